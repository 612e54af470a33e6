package translate

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"konductor.dev/controller/translate/declarative"
)

// KindKongConsumer is the Kong Ingress Controller's consumer kind.
const KindKongConsumer = "KongConsumer"

// Reasons for consumer problems.
const (
	ReasonInvalidConsumer     = "InvalidConsumer"
	ReasonInvalidCredential   = "InvalidCredential"
	ReasonConflictingConsumer = "ConflictingConsumer"
)

// Consumer is what translation reads of a KongConsumer. ConsumerOf makes
// one from the object as served.
type Consumer struct {
	Namespace, Name string
	UID             types.UID
	Created         metav1.Time // the older consumer keeps a contested username or key
	Username        string
	CustomID        string
	// Credentials name Secrets of the consumer's namespace labelled
	// konghq.com/credential.
	Credentials []string
	// Annotations holds the konghq.com/ annotations (plugins).
	Annotations map[string]string
	// ConsumerGroups is set when the object names consumer groups, which
	// only Kong Enterprise has.
	ConsumerGroups bool
	// Class is the kubernetes.io/ingress.class annotation, by which the
	// cache selects the consumers of our class; translation ignores it.
	Class string
}

// Ref names the object.
func (c *Consumer) Ref() ObjectRef {
	return ObjectRef{Kind: KindKongConsumer, Namespace: c.Namespace, Name: c.Name, UID: c.UID}
}

// ConsumerOf reads a KongConsumer served as an unstructured object.
func ConsumerOf(u *unstructured.Unstructured) (*Consumer, error) {
	raw, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return ConsumerFromJSON(raw)
}

// ConsumerFromJSON reads a KongConsumer from its JSON form.
func ConsumerFromJSON(raw []byte) (*Consumer, error) {
	var d struct {
		Kind           string            `json:"kind"`
		Metadata       metav1.ObjectMeta `json:"metadata"`
		Username       string            `json:"username"`
		CustomID       string            `json:"custom_id"`
		Credentials    []string          `json:"credentials"`
		ConsumerGroups []string          `json:"consumerGroups"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	if d.Kind != KindKongConsumer {
		return nil, fmt.Errorf("kind %q is not %s", d.Kind, KindKongConsumer)
	}
	return &Consumer{
		Namespace: d.Metadata.Namespace, Name: d.Metadata.Name, UID: d.Metadata.UID, Created: d.Metadata.CreationTimestamp,
		Username: d.Username, CustomID: d.CustomID, Credentials: d.Credentials,
		Annotations:    kongAnnotations(d.Metadata.Annotations),
		ConsumerGroups: len(d.ConsumerGroups) > 0,
		Class:          d.Metadata.Annotations["kubernetes.io/ingress.class"],
	}, nil
}

// credentialKind describes one konghq.com/credential label value: the
// Secret keys it reads (required first) and where each goes.
type credentialKind struct {
	required, optional []string
	// unique is the field Kong keeps unique across all consumers ("" for
	// none beyond the consumer).
	unique string
}

var credentialKinds = map[string]credentialKind{
	"key-auth":   {required: []string{"key"}, unique: "key"},
	"basic-auth": {required: []string{"username", "password"}, unique: "username"},
	"jwt":        {required: []string{"key"}, optional: []string{"algorithm", "secret", "rsa_public_key"}, unique: "key"},
	"acl":        {required: []string{"group"}},
	"hmac-auth":  {required: []string{"username", "secret"}, unique: "username"},
}

// consumerClaim is a value Kong keeps unique: a username, a custom_id or a
// credential's key, by kind.
type consumerClaim struct{ kind, value string }

// consumerTranslator returns the translator that decides and builds the
// consumers, possibly while t decides the Ingresses: it shares only the
// lookups both read (Secrets) and has its own errors, slabs and scratch
// space. The consumers' plugins are resolved by t in adoptConsumers, as
// plugin entries are shared with the Ingresses and Services.
func (t *translator) consumerTranslator() *translator {
	return &translator{opts: t.opts, secrets: t.secrets, nsTags: make(map[string]string)}
}

// adoptConsumers takes the consumers ct decided and built, with its
// reports, and attaches the consumers' plugins.
func (t *translator) adoptConsumers(ct *translator) {
	t.errs = append(t.errs, ct.errs...)
	t.consumers = ct.consumers
	for _, job := range ct.consumerJobs {
		c := job.c
		for _, e := range t.pluginsOf(c.Ref(), c.Annotations) {
			e.attached++
			t.consumerPlugins = append(t.consumerPlugins, consumerPlugin{e, c.Namespace + "/" + c.Name, job.id})
		}
	}
}

// translateConsumers decides the consumers, oldest first. A Secret's values
// never appear in a message.
func (t *translator) translateConsumers(in []*Consumer) {
	// By age, then namespace/name, which a cluster keeps unique.
	keys := make([]aged[*Consumer], 0, len(in))
	for _, c := range in {
		if c != nil {
			keys = append(keys, aged[*Consumer]{created: c.Created.Time, namespace: c.Namespace, name: c.Name, obj: c})
		}
	}
	consumers := oldestFirst(keys)
	// owners maps each claimed value to its consumer, an index in consumers.
	owners := make(map[consumerClaim]int32, 2*len(consumers))
	t.consumerJobs = make([]consumerJob, 0, len(consumers))
	for idx, c := range consumers {
		ref := c.Ref()
		if c.Username == "" && c.CustomID == "" {
			t.report(ref, "username", ReasonInvalidConsumer, "a username or a custom_id is required; consumer skipped")
			continue
		}
		if c.ConsumerGroups {
			t.report(ref, "consumerGroups", ReasonEnterpriseOnly, "consumer groups need Kong Enterprise; ignored")
		}
		taken := false
		for _, cl := range []consumerClaim{{"username", c.Username}, {"custom_id", c.CustomID}} {
			if cl.value == "" {
				continue
			}
			if owner, ok := owners[cl]; ok {
				t.report(ref, cl.kind, ReasonConflictingConsumer, "%s %q is already used by %s, which is older; consumer skipped",
					cl.kind, cl.value, consumers[owner].Ref())
				taken = true
			}
		}
		if taken {
			continue
		}
		for _, cl := range []consumerClaim{{"username", c.Username}, {"custom_id", c.CustomID}} {
			if cl.value != "" {
				owners[cl] = int32(idx)
			}
		}

		job := consumerJob{c: c, tags: t.tagsFor(ref), creds: t.credentialJobs.take(len(c.Credentials))[:0]}
		for i, name := range c.Credentials {
			if cj, ok := t.credential(consumers, int32(idx), i, name, owners); ok {
				job.creds = append(job.creds, cj)
			}
		}
		t.consumerJobs = append(t.consumerJobs, job)
	}
}

// consumerJob is a consumer decided on, with its credentials, whose
// entities buildConsumers makes.
type consumerJob struct {
	c     *Consumer
	tags  []*string
	creds []credentialJob
	id    string // set by buildConsumers
}

// credentialJob is a credential decided on.
type credentialJob struct {
	name     string
	kindName string
	sec      *corev1.Secret
}

// buildConsumers makes the entities of the decided consumers with bd. The
// ids are hashes and the values copies, a pure function of each consumer.
func (t *translator) buildConsumers(bd *builder) {
	t.consumers = make([]*declarative.Consumer, 0, len(t.consumerJobs))
	for i := range t.consumerJobs {
		job := &t.consumerJobs[i]
		c := job.c
		bd.ids.begin("consumers")
		bd.ids.buf = append(append(append(bd.ids.buf, c.Namespace...), '/'), c.Name...)
		block := t.consumerBlocks.one()
		tb := &bd.text
		tb.reset()
		tb.buf = bd.ids.append(tb.buf)
		tb.end()
		block.id = tb.cut().at(0)
		block.username, block.customID = c.Username, c.CustomID
		kc := &block.consumer
		kc.ID, kc.Tags = &block.id, job.tags
		if c.Username != "" {
			kc.Username = &block.username
		}
		if c.CustomID != "" {
			kc.CustomID = &block.customID
		}
		for i, cj := range job.creds {
			t.buildCredential(bd, c.Namespace, cj, kc, len(job.creds)-i)
		}
		t.consumers = append(t.consumers, kc)
		job.id = block.id
	}
}

// consumerPlugin is a plugin attached to a consumer, made once every
// attachment has been counted.
type consumerPlugin struct {
	e        *pluginEntry
	name, id string
}

type consumerBlock struct {
	consumer               declarative.Consumer
	id, username, customID string
}

type credentialBlock struct {
	cred   declarative.Credential
	id     string
	values [4]string
}

// credential adds the credential Secret name (credentials[i] of
// consumers[idx]) to kc, or reports why it cannot, on the consumer, naming
// the Secret and the field, never the value. The credential carries the
// consumer's tags: Kong's complaints about it belong to the object that
// asked for it.
func (t *translator) credential(consumers []*Consumer, idx int32, i int, name string, owners map[consumerClaim]int32) (credentialJob, bool) {
	consumer := consumers[idx]
	namespace := consumer.Namespace
	sec := t.secrets[nsName{namespace, name}]
	ref := consumer.Ref()
	field := func() string { return "credentials[" + strconv.Itoa(i) + "]" } // made only for a report
	if sec == nil || sec.Labels[LabelCredential] == "" {
		t.report(ref, field(), ReasonSecretNotFound, "Secret %s/%s labelled %s not found; credential skipped", namespace, name, LabelCredential)
		return credentialJob{}, false
	}
	kindName := sec.Labels[LabelCredential]
	kind, ok := credentialKinds[kindName]
	if !ok {
		t.report(ref, field(), ReasonInvalidCredential, "Secret %s/%s: %s %q is not one of %s; credential skipped",
			namespace, name, LabelCredential, kindName, credentialKindNames())
		return credentialJob{}, false
	}
	for _, k := range kind.required {
		if len(sec.Data[k]) == 0 {
			t.report(ref, field(), ReasonInvalidCredential, "Secret %s/%s: a %s credential needs the key %q; credential skipped", namespace, name, kindName, k)
			return credentialJob{}, false
		}
	}
	// Kong keeps key-auth and jwt keys and basic-auth and hmac-auth
	// usernames unique across consumers, and an ACL group unique within one.
	cl := consumerClaim{kindName, t.copyText(sec.Data[kind.unique])}
	if kind.unique == "" {
		cl = consumerClaim{kindName + " of " + ref.String(), t.copyText(sec.Data[kind.required[0]])}
	}
	if owner, taken := owners[cl]; taken {
		what := "the " + kindName + " " + kind.unique
		if kind.unique == "" {
			what = "its " + kind.required[0]
		}
		t.report(ref, field(), ReasonConflictingConsumer, "Secret %s/%s: %s is already used by %s; credential skipped",
			namespace, name, what, consumers[owner].Ref())
		return credentialJob{}, false
	}
	owners[cl] = idx
	return credentialJob{name: name, kindName: kindName, sec: sec}, true
}

// buildCredential makes the credential cj of a consumer in namespace and
// adds it to kc; room credentials of kc, this one included, are still to
// be made, which bounds the length of a list started here.
func (t *translator) buildCredential(bd *builder, namespace string, cj credentialJob, kc *declarative.Consumer, room int) {
	name, kindName, sec := cj.name, cj.kindName, cj.sec
	kind := credentialKinds[kindName]
	// The id and the values are cut from one string.
	b := t.credentialBlocks.one()
	bd.ids.begin("credentials")
	bd.ids.buf = append(append(append(append(append(bd.ids.buf, kindName...), ':'), namespace...), '/'), name...)
	tb := &bd.text
	tb.reset()
	tb.buf = bd.ids.append(tb.buf)
	tb.end()
	var keys [4]string
	n := 0
	for _, k := range [...][]string{kind.required, kind.optional} {
		for _, key := range k {
			if v := sec.Data[key]; len(v) > 0 {
				tb.buf = append(tb.buf, v...)
				tb.end()
				keys[n] = key
				n++
			}
		}
	}
	text := tb.cut()
	b.id = text.at(0)
	for i := range n {
		b.values[i] = text.at(i + 1)
	}
	c := &b.cred
	c.ID, c.Tags = &b.id, kc.Tags
	set := func(into **string, key string) {
		if i := slices.Index(keys[:n], key); i >= 0 {
			*into = &b.values[i]
		}
	}
	switch kindName {
	case "key-auth":
		set(&c.Key, "key")
		t.appendCredential(&kc.KeyAuthCredentials, c, room)
	case "basic-auth":
		set(&c.Username, "username")
		set(&c.Password, "password")
		t.appendCredential(&kc.BasicAuthCredentials, c, room)
	case "jwt":
		set(&c.Key, "key")
		set(&c.Algorithm, "algorithm")
		set(&c.Secret, "secret")
		set(&c.RSAPublicKey, "rsa_public_key")
		t.appendCredential(&kc.JWTSecrets, c, room)
	case "acl":
		set(&c.Group, "group")
		t.appendCredential(&kc.ACLs, c, room)
	case "hmac-auth":
		set(&c.Username, "username")
		set(&c.Secret, "secret")
		t.appendCredential(&kc.HMACAuthCredentials, c, room)
	}
}

// appendCredential appends c to a consumer's list of one kind, starting
// the list from a slab with room for the consumer's remaining credentials.
func (t *translator) appendCredential(list *[]*declarative.Credential, c *declarative.Credential, room int) {
	if *list == nil {
		*list = t.credentialLists.take(room)[:0]
	}
	*list = append(*list, c)
}

// credentialKindNames lists the konghq.com/credential values understood.
func credentialKindNames() string {
	names := make([]string, 0, len(credentialKinds))
	for k := range credentialKinds {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
