package kong

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
)

// Consumer credentials are entities of the authentication plugins
// (key-auth, basic-auth, acl, jwt, hmac-auth). Each belongs to a consumer,
// is deleted with it, and is declared either at the top level or nested
// under its consumer (consumers[].keyauth_credentials[] and so on).

func credentialSchemas() []*entitySchema {
	consumer := func() *field { return foreign("consumer", "consumers").req() }
	return []*entitySchema{
		{
			collection: "keyauth_credentials", singular: "keyauth_credential", endpointKey: "key",
			adminName: "key-auths", adminNested: "key-auth",
			fields: []*field{
				idField(), tsField("created_at"), consumer(),
				autoStr("key").uniq(),
				integer("ttl"),
				tagsField(),
			},
		},
		{
			collection: "basicauth_credentials", singular: "basicauth_credential", endpointKey: "username",
			adminName: "basic-auths", adminNested: "basic-auth",
			fields: []*field{
				idField(), tsField("created_at"), consumer(),
				str("username").req().uniq(),
				str("password").req(),
				tagsField(),
			},
		},
		{
			collection: "acls", singular: "acl",
			adminName: "acls", adminNested: "acls",
			fields: []*field{
				idField(), tsField("created_at"), consumer(),
				str("group").req(),
				tagsField(),
			},
			// Kong's cache key: a consumer is in a group once.
			cacheKey: func(e entity) string { return "acls:" + foreignID(e, "consumer") + ":" + asString(e["group"]) },
		},
		{
			collection: "jwt_secrets", singular: "jwt_secret", endpointKey: "key",
			adminName: "jwts", adminNested: "jwt",
			fields: []*field{
				idField(), tsField("created_at"), consumer(),
				autoStr("key").uniq(),
				autoStr("secret"),
				str("rsa_public_key"),
				str("algorithm").withDefault("HS256").oneof("HS256", "HS384", "HS512",
					"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"),
				tagsField(),
			},
			check: func(e entity) []string {
				switch asString(e["algorithm"]) {
				case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA":
					if e["rsa_public_key"] == nil {
						return []string{"failed conditional validation given value of field 'algorithm'"}
					}
				}
				return nil
			},
		},
		{
			collection: "hmacauth_credentials", singular: "hmacauth_credential", endpointKey: "username",
			adminName: "hmac-auths", adminNested: "hmac-auth",
			fields: []*field{
				idField(), tsField("created_at"), consumer(),
				str("username").req().uniq(),
				autoStr("secret"),
				tagsField(),
			},
		},
	}
}

// autoStr is a string the server generates when it is not given.
func autoStr(name string) *field { f := str(name); f.auto = true; return f }

// isCredential reports whether coll holds consumer credentials.
func isCredential(coll string) bool {
	switch coll {
	case "keyauth_credentials", "basicauth_credentials", "acls", "jwt_secrets", "hmacauth_credentials":
		return true
	}
	return false
}

// hashBasicAuthPassword is how Kong stores a basic-auth password: the hex
// sha1 of the password followed by the consumer's id.
func hashBasicAuthPassword(consumerID, password string) string {
	sum := sha1.Sum([]byte(password + consumerID))
	return hex.EncodeToString(sum[:])
}

// transformOnWrite applies what Kong does to a written entity's values:
// a basic-auth password is stored hashed.
func transformOnWrite(sch *entitySchema, e entity) {
	if sch.collection == "basicauth_credentials" {
		e["password"] = hashBasicAuthPassword(foreignID(e, "consumer"), asString(e["password"]))
	}
}

// fillAutoFields generates the auto fields (a key-auth key, a JWT key and
// secret, an HMAC secret) that the input left out. With seed "" they are
// random, as Kong makes them; a declarative load passes the entity's id so
// that loading the same document twice yields the same configuration.
func fillAutoFields(sch *entitySchema, e entity, seed string) {
	for _, f := range sch.fields {
		if !f.auto || f.typ != tString || f.uuid || e[f.name] != nil {
			continue
		}
		e[f.name] = generatedSecret(seed, f.name)
	}
}

// generatedSecret is 32 hex digits, like Kong's random strings.
func generatedSecret(seed, field string) string {
	if seed == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}
	sum := sha1.Sum([]byte("kongsim-auto\x00" + seed + "\x00" + field))
	return hex.EncodeToString(sum[:16])
}
