package kong

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"konductor.dev/sim/kong/proxy"
	"konductor.dev/sim/kong/store"
)

// Admin returns the node's Admin API handler (KONG_ADMIN_LISTEN).
func (n *Node) Admin() http.Handler { return adminAPI{n} }

type adminAPI struct{ n *Node }

func (a adminAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.n.requests.Add(1)
	w.Header().Set("Server", "kong/"+a.n.opts.Version)
	segs := splitPath(r.URL.Path)
	if err := a.route(w, r, segs); err != nil {
		writeError(w, err)
	}
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// route dispatches a request; a returned error is written as the response.
func (a adminAPI) route(w http.ResponseWriter, r *http.Request, segs []string) *apiError {
	n := a.n
	allow := func(methods ...string) *apiError {
		for _, m := range methods {
			if r.Method == m {
				return nil
			}
		}
		return errMethodNotAllowed
	}
	switch {
	case len(segs) == 0:
		if err := allow(http.MethodGet); err != nil {
			return err
		}
		return a.root(w, r)
	case len(segs) == 1 && segs[0] == "status":
		if err := allow(http.MethodGet); err != nil {
			return err
		}
		writeRaw(w, http.StatusOK, n.statusJSON(r.Context()))
		return nil
	case len(segs) == 1 && segs[0] == "config":
		if err := allow(http.MethodGet, http.MethodPost); err != nil {
			return err
		}
		if r.Method == http.MethodGet {
			return a.getConfig(w)
		}
		return a.postConfig(w, r)
	case len(segs) == 1 && segs[0] == "metrics":
		// The prometheus plugin serves its metrics on the Admin API too.
		if err := allow(http.MethodGet); err != nil {
			return err
		}
		n.metrics.handler().ServeHTTP(w, r)
		return nil
	case segs[0] == "schemas":
		return a.schemas(w, r, segs[1:])
	case len(segs) == 2 && segs[0] == "_kongsim" && segs[1] == "audit":
		if err := allow(http.MethodGet); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, n.Audit())
		return nil
	case len(segs) == 2 && segs[0] == "plugins" && segs[1] == "enabled":
		if err := allow(http.MethodGet); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"enabled_plugins": strs(availablePlugins()...)})
		return nil
	case len(segs) == 3 && segs[0] == "plugins" && segs[1] == "schema":
		// Deprecated since Kong 1.2 and kept until 4.0: the config record
		// of a plugin's schema alone.
		if err := allow(http.MethodGet); err != nil {
			return err
		}
		p := plugins[segs[2]]
		if p == nil {
			return messageError(http.StatusNotFound, "No plugin named '"+segs[2]+"'")
		}
		writeJSON(w, http.StatusOK, map[string]any{"fields": schemaDocument(p.config)})
		return nil
	case segs[0] == "tags":
		return a.tags(w, r, segs[1:])
	case segs[0] == "targets":
		// Kong 3 disables the top-level targets endpoints: targets are
		// reached only below their upstream.
		return errNotFound
	case adminCollections[segs[0]] != "":
		segs[0] = adminCollections[segs[0]]
		return a.entities(w, r, segs)
	}
	return errNotFound
}

func (a adminAPI) root(w http.ResponseWriter, r *http.Request) *apiError {
	n := a.n
	if !n.dbless {
		if err := n.opts.Backend.Ping(r.Context()); err != nil {
			return errInternal
		}
	}
	enabled := []any{}
	if st, _, err := n.readState(r.Context()); err == nil {
		seen := map[string]bool{}
		for _, p := range st.list("plugins") {
			if name := asString(p["name"]); !seen[name] {
				seen[name] = true
				enabled = append(enabled, name)
			}
		}
	}
	avail := map[string]any{}
	for _, p := range availablePlugins() {
		priority, ok := proxy.Priority(p)
		if !ok {
			priority = otherPluginPriority[p]
		}
		avail[p] = map[string]any{"version": n.opts.Version, "priority": priority}
	}
	dbUpdate := n.opts.UpdateFrequency.Seconds()
	configuration := map[string]any{
		"database":            n.opts.Database,
		"router_flavor":       n.opts.RouterFlavor,
		"role":                "traditional",
		"db_update_frequency": dbUpdate,
		"plugins":             strs("bundled"),
		"loaded_plugins":      loadedPlugins(),
	}
	for k, v := range n.listens {
		configuration[k] = v
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"version":       n.opts.Version,
		"edition":       "community",
		"node_id":       n.opts.NodeID,
		"hostname":      n.opts.Hostname,
		"tagline":       "Welcome to kong",
		"lua_version":   "LuaJIT 2.1.0-20231117",
		"configuration": configuration,
		"plugins": map[string]any{
			"available_on_server": avail,
			"enabled_in_cluster":  enabled,
		},
		"timers": map[string]any{"running": 0, "pending": 0},
		"pids":   map[string]any{"master": 1, "workers": []any{2}},
	})
	return nil
}

// otherPluginPriority holds Kong's PRIORITY of the plugins kongsim
// validates but does not run.
var otherPluginPriority = map[string]int{"request-size-limiting": 951, "response-ratelimiting": 900}

func loadedPlugins() map[string]any {
	out := map[string]any{}
	for _, p := range availablePlugins() {
		out[p] = true
	}
	return out
}

const dbModeConfigMessage = "this endpoint is only available when Kong is configured to not use a database"

func (a adminAPI) getConfig(w http.ResponseWriter) *apiError {
	if !a.n.dbless {
		return messageError(http.StatusBadRequest, dbModeConfigMessage)
	}
	js, err := json.Marshal(a.n.Config().declarative())
	if err != nil {
		return errInternal
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return errInternal
	}
	writeJSON(w, http.StatusOK, map[string]any{"config": string(y)})
	return nil
}

// truthy reads flatten_errors as Kong does; check_hash is only ever "1".
func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true", "on", "yes":
		return true
	}
	return false
}

func (a adminAPI) postConfig(w http.ResponseWriter, r *http.Request) *apiError {
	n := a.n
	if !n.dbless {
		return messageError(http.StatusBadRequest, dbModeConfigMessage)
	}
	if !n.loading.TryLock() {
		w.Header().Set("Retry-After", "1")
		return messageError(http.StatusTooManyRequests, "Currently loading previous configuration")
	}
	defer n.loading.Unlock()
	body, apiErr := configBody(r, n.bodyBuf)
	if apiErr != nil {
		return apiErr
	}
	if cap(body) <= maxKeptBody {
		n.bodyBuf = body[:0]
	}
	q := r.URL.Query()
	st, decl, err := n.decl.load(body, n.opts.Now().Unix(), n.Config(), n.opts.RouterFlavor)
	if err != nil {
		var de *DeclarativeError
		if !errors.As(err, &de) {
			return errInternal
		}
		if de.Fields == nil {
			// Kong answers a missing configuration with a bare message.
			return messageError(http.StatusBadRequest, de.Message)
		}
		e := codedError(http.StatusBadRequest, codeDeclarativeConfig, de.Message, de.Fields)
		if truthy(q.Get("flatten_errors")) {
			flat := de.Flattened
			if flat == nil {
				flat = []FlattenedError{}
			}
			e.body["flattened_errors"] = flat
		}
		return e
	}
	if q.Get("check_hash") == "1" && st.Hash() == n.ConfigHash() {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	if err := n.configureProxy(st); err != nil {
		// The router refuses what validation let through (a regex it
		// cannot compile): Kong would have refused the document.
		fields := map[string]any{"error": err.Error()}
		return codedError(http.StatusBadRequest, codeDeclarativeConfig, "declarative config is invalid: "+luaString(fields), fields)
	}
	n.mu.Lock()
	n.state = st
	n.mu.Unlock()
	n.decl = decl
	n.record(r, st.Hash(), 0)
	n.log.Info("declarative configuration loaded", "hash", st.Hash(), "entities", st.Count())
	writeLoaded(w, st)
	return nil
}

// loadedEntities is the body of a successful POST /config: every entity
// by collection and id, as Kong answers.
func loadedEntities(st *State) []byte {
	var b bytes.Buffer
	b.Grow(loadedEntitiesSize(st))
	_, _ = newLoadedBody(st).WriteTo(&b)
	return b.Bytes()
}

// writeLoaded answers a successful POST /config. The body is megabytes of
// already encoded rows: it is rendered piece by piece as it is written
// rather than assembled, and a writer that can defer it (the in-memory
// transport) hands the rendering to the client's reads, so that a client
// reading a part of it pays for that part only.
func writeLoaded(w http.ResponseWriter, st *State) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(loadedEntitiesSize(st)))
	body := newLoadedBody(st)
	if d, ok := w.(bodyDeferrer); ok {
		d.deferBody(body)
		w.WriteHeader(http.StatusCreated)
		return
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = body.WriteTo(w)
}

// bodyDeferrer is a ResponseWriter that takes a body as a reader for its
// client to read later, instead of having it written now. The reader
// must render the same bytes whenever it is read: it reads an immutable
// State.
type bodyDeferrer interface {
	deferBody(r io.Reader)
}

// loadedEntitiesSize is the exact length of loadedEntities(st).
func loadedEntitiesSize(st *State) int {
	var scratch []byte
	size := 2 + len(collections) - 1 // braces, commas between collections
	for _, c := range collections {
		t := st.tables[c]
		scratch = appendJSONString(scratch[:0], c)
		size += len(scratch) + 3 // ":{", "}"
		if n := t.rows.Len(); n > 1 {
			size += n - 1
		}
		size += t.encSize(st.stampAt)
	}
	return size
}

// loadedBody renders loadedEntities(st) a chunk at a time: a reader over
// an immutable State that holds at most a chunk of the rendering.
type loadedBody struct {
	st      *State
	coll    int    // index in collections of the collection being rendered
	opened  bool   // its key and opening brace are rendered
	after   string // the id of the last row rendered in it; "" for none
	started bool   // the document's opening brace is rendered
	done    bool   // everything is rendered
	pending []byte // rendered, not yet read
	chunk   []byte // pending's backing array, reused
	stamp   []byte // stampText of the state's load time
}

// loadedChunk is how much a loadedBody renders at a time (a row longer
// than that makes a longer chunk).
const loadedChunk = 32 << 10

func newLoadedBody(st *State) *loadedBody { return &loadedBody{st: st, stamp: stampText(st.stampAt)} }

func (b *loadedBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		if b.done {
			return 0, io.EOF
		}
		b.fill()
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// WriteTo writes the rest of the body to w, a chunk per write.
func (b *loadedBody) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		for len(b.pending) == 0 {
			if b.done {
				return total, nil
			}
			b.fill()
		}
		n, err := w.Write(b.pending)
		total += int64(n)
		b.pending = b.pending[n:]
		if err != nil {
			return total, err
		}
	}
}

// fill renders the next chunk into pending, which must be empty.
func (b *loadedBody) fill() {
	out := b.chunk[:0]
	if !b.started {
		out = append(out, '{')
		b.started = true
	}
	for len(out) < loadedChunk {
		if b.coll == len(collections) {
			out = append(out, '}')
			b.done = true
			break
		}
		c := collections[b.coll]
		if !b.opened {
			if b.coll > 0 {
				out = append(out, ',')
			}
			out = appendJSONString(out, c)
			out = append(out, ':', '{')
			b.opened, b.after = true, ""
		}
		full := false
		b.st.tables[c].rows.AscendGreaterOrEqual(&row{id: b.after}, func(r *row) bool {
			if b.after != "" && r.id == b.after {
				return true
			}
			if len(out) >= loadedChunk {
				full = true
				return false
			}
			if b.after != "" {
				out = append(out, ',')
			}
			out = appendJSONString(out, r.id)
			out = append(out, ':')
			if r.floats(b.st.stampAt) {
				out = r.appendEncStamped(out, b.stamp)
			} else {
				out = append(out, r.enc...)
			}
			b.after = r.id
			return true
		})
		if full {
			break
		}
		out = append(out, '}')
		b.coll++
		b.opened = false
	}
	b.chunk = out
	b.pending = out
}

// maxKeptBody bounds the body buffer a node keeps between loads.
const maxKeptBody = 64 << 20

// configBody reads the declarative text of POST /config: the raw body, or
// the "config" field of a form (`curl -F config=@kong.yml`). A raw body is
// read into buf when it fits.
func configBody(r *http.Request, buf []byte) ([]byte, *apiError) {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "multipart/form-data":
		if err := r.ParseMultipartForm(64 << 20); err != nil {
			return nil, messageError(http.StatusBadRequest, "failed parsing the multipart body: "+err.Error())
		}
		if files := r.MultipartForm.File["config"]; len(files) > 0 {
			f, err := files[0].Open()
			if err != nil {
				return nil, messageError(http.StatusBadRequest, "failed reading the config part")
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil {
				return nil, messageError(http.StatusBadRequest, "failed reading the config part")
			}
			return b, nil
		}
		return []byte(r.FormValue("config")), nil
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return nil, messageError(http.StatusBadRequest, "failed parsing the form body")
		}
		return []byte(r.PostFormValue("config")), nil
	}
	// A body of known length is read into one buffer of that size.
	b := bytes.NewBuffer(buf[:0])
	if r.ContentLength > 0 && r.ContentLength < 1<<30 {
		b.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := b.ReadFrom(r.Body); err != nil {
		return nil, messageError(http.StatusBadRequest, "failed reading the request body")
	}
	return b.Bytes(), nil
}

func (a adminAPI) schemas(w http.ResponseWriter, r *http.Request, segs []string) *apiError {
	sch := schemaOf(a.n.opts.RouterFlavor, segs[0])
	switch {
	case len(segs) == 1 && sch != nil && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, entitySchemaDocument(sch))
	case len(segs) == 2 && segs[0] == "plugins" && segs[1] != "validate" && r.Method == http.MethodGet:
		p := plugins[segs[1]]
		if p == nil {
			return messageError(http.StatusNotFound, "No plugin named '"+segs[1]+"'")
		}
		writeJSON(w, http.StatusOK, pluginSchemaDocument(p))
	case len(segs) == 2 && segs[1] == "validate" && sch != nil && r.Method == http.MethodPost:
		body, err := readBody(r, sch)
		if err != nil {
			return err
		}
		if _, errs := normalizeEntity(sch, body, nil); errs != nil {
			return schemaViolation(errs)
		}
		writeJSON(w, http.StatusOK, map[string]any{"message": "schema validation successful"})
	case len(segs) == 1 && sch != nil, len(segs) == 2 && segs[0] == "plugins",
		len(segs) == 2 && segs[1] == "validate" && sch != nil:
		return errMethodNotAllowed
	default:
		return errNotFound
	}
	return nil
}

// readBody decodes a JSON object or form body into the shape of an entity
// of sch; an empty body is an empty object.
func readBody(r *http.Request, sch *entitySchema) (map[string]any, *apiError) {
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "application/x-www-form-urlencoded":
		if err := r.ParseForm(); err != nil {
			return nil, messageError(http.StatusBadRequest, "failed parsing the form body")
		}
		return formEntity(sch, r.PostForm), nil
	case "multipart/form-data":
		if err := r.ParseMultipartForm(8 << 20); err != nil {
			return nil, messageError(http.StatusBadRequest, "failed parsing the multipart body")
		}
		return formEntity(sch, r.MultipartForm.Value), nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, messageError(http.StatusBadRequest, "failed reading the request body")
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return map[string]any{}, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return nil, messageError(http.StatusBadRequest, "Cannot parse JSON body")
	}
	return m, nil
}

// adminCollections maps the first segment of an Admin API path to the
// collection it serves: entity names, and the plugins' own names for their
// credentials (/key-auths serves keyauth_credentials).
var adminCollections = map[string]string{}

// initAdminCollections runs once the schemas are registered.
func initAdminCollections() {
	for name, sch := range schemas {
		if sch.adminName != "" {
			adminCollections[sch.adminName] = name
		} else {
			adminCollections[name] = name
		}
	}
}

// adminChildName is the path segment under a parent that lists children
// of coll (/consumers/{c}/key-auth for keyauth_credentials).
func adminChildName(coll string) string {
	if sch := schemas[coll]; sch != nil && sch.adminNested != "" {
		return sch.adminNested
	}
	return coll
}

var verbs = map[string]string{
	http.MethodPost: "create", http.MethodPut: "create or update",
	http.MethodPatch: "update", http.MethodDelete: "remove",
}

// entities serves /{coll}[/{key}[/{child}[/{ckey}]]].
func (a adminAPI) entities(w http.ResponseWriter, r *http.Request, segs []string) *apiError {
	n := a.n
	sch := schemaOf(n.opts.RouterFlavor, segs[0])
	var sc *scope
	target := sch
	var key string
	hasKey := false
	switch len(segs) {
	case 1:
	case 2:
		key, hasKey = segs[1], true
	case 3, 4:
		child := ""
		for _, ns := range nesting[segs[0]] {
			if adminChildName(ns.key) == segs[2] {
				child = ns.coll
				sc = &scope{field: ns.field}
			}
		}
		if child == "" {
			if len(segs) == 3 && segs[0] == "routes" && segs[2] == "service" {
				return a.routeService(w, r, segs[1])
			}
			return errNotFound
		}
		target = schemaOf(n.opts.RouterFlavor, child)
		if len(segs) == 4 {
			key, hasKey = segs[3], true
		}
	default:
		return errNotFound
	}
	read := r.Method == http.MethodGet
	switch {
	case !hasKey && r.Method != http.MethodGet && r.Method != http.MethodPost,
		hasKey && r.Method == http.MethodPost:
		return errMethodNotAllowed
	case !read && r.Method != http.MethodPost && r.Method != http.MethodPut &&
		r.Method != http.MethodPatch && r.Method != http.MethodDelete:
		return errMethodNotAllowed
	}
	if !read && n.dbless {
		by := ""
		if hasKey && !isUUID(key) && target.endpointKey != "" {
			by = " by '" + target.endpointKey + "'"
		}
		return codedError(http.StatusMethodNotAllowed, codeOperationUnsupported,
			"cannot "+verbs[r.Method]+" '"+target.collection+"' entities"+by+" when not using a database", nil)
	}
	ctx := r.Context()
	if !read {
		n.writing.Lock()
		defer n.writing.Unlock()
	}
	st, rev, err := n.readState(ctx)
	if err != nil {
		n.log.Warn("database read failed", "err", err)
		return errInternal
	}
	if sc != nil {
		parent := lookup(st, sch, segs[1], nil)
		if parent == nil {
			return errNotFound
		}
		sc.parentID = asString(parent["id"])
	}
	if read {
		if !hasKey {
			return a.list(w, r, st, target, sc)
		}
		e := lookup(st, target, key, sc)
		if e == nil {
			return errNotFound
		}
		writeJSON(w, http.StatusOK, present(st, target, e))
		return nil
	}
	m, apiErr := a.mutation(r, st, target, key, hasKey, sc)
	if apiErr != nil {
		return apiErr
	}
	if m == nil { // DELETE of an absent entity
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	hash, newRev, err := n.commit(ctx, st, rev, m)
	if err != nil {
		var uv *store.UniqueViolation
		if errors.As(err, &uv) {
			return codedError(http.StatusConflict, codeUniqueViolation,
				"UNIQUE violation detected on '{name=\""+uv.Name+"\"}'", map[string]any{"name": uv.Name})
		}
		n.log.Warn("database write failed", "err", err)
		return errInternal
	}
	n.record(r, hash, newRev)
	if m.result == nil {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	writeJSON(w, m.status, m.result)
	return nil
}

// mutation validates one write request against st.
func (a adminAPI) mutation(r *http.Request, st *State, sch *entitySchema, key string, hasKey bool, sc *scope) (*mutation, *apiError) {
	now := a.n.opts.Now().Unix()
	var existing entity
	if hasKey {
		existing = lookup(st, sch, key, sc)
	}
	if r.Method == http.MethodDelete {
		if existing == nil {
			return nil, nil
		}
		keys, err := deletion(st, sch, existing)
		if err != nil {
			return nil, err
		}
		return &mutation{dels: keys}, nil
	}
	body, apiErr := readBody(r, sch)
	if apiErr != nil {
		return nil, apiErr
	}
	op := writeOp{st: st, sch: sch, body: body, existing: existing, sc: sc, now: now}
	switch r.Method {
	case http.MethodPost:
		if id, ok := body["id"].(string); ok && isUUID(id) {
			if st.get(sch.collection, id) != nil {
				return nil, codedError(http.StatusConflict, codePrimaryKeyViolation, "primary key violation on key '{id=\""+id+"\"}'",
					map[string]any{"id": id})
			}
			op.id = strings.ToLower(id)
		}
		return op.build(http.StatusCreated)
	case http.MethodPatch:
		if existing == nil {
			return nil, errNotFound
		}
		op.body = mergePatch(sch, existing, body)
		if _, ok := body["password"]; sch.collection == "basicauth_credentials" && !ok {
			// Kong hashes a password when one is written, not the stored hash.
			op.keepPassword = asString(existing["password"])
		}
		return op.build(http.StatusOK)
	default: // PUT
		if existing == nil && sch.collection == "targets" {
			// Kong updates targets in place only; go-kong then POSTs.
			return nil, errNotFound
		}
		if isUUID(key) {
			op.id = strings.ToLower(key)
		} else if sch.endpointKey != "" && sch.cacheKey == nil {
			body[sch.endpointKey] = key
		} else if existing == nil {
			return nil, errNotFound
		}
		return op.build(http.StatusOK)
	}
}

func (a adminAPI) routeService(w http.ResponseWriter, r *http.Request, routeKey string) *apiError {
	if r.Method != http.MethodGet {
		return errMethodNotAllowed
	}
	st, _, err := a.n.readState(r.Context())
	if err != nil {
		return errInternal
	}
	route := lookup(st, schemas["routes"], routeKey, nil)
	if route == nil {
		return errNotFound
	}
	svc := st.get("services", foreignID(route, "service"))
	if svc == nil {
		return errNotFound
	}
	writeJSON(w, http.StatusOK, svc)
	return nil
}

// list serves a paginated, tag-filtered collection.
func (a adminAPI) list(w http.ResponseWriter, r *http.Request, st *State, sch *entitySchema, sc *scope) *apiError {
	q := r.URL.Query()
	size := 100
	if s := q.Get("size"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 1000 {
			return codedError(http.StatusBadRequest, codeInvalidSize, "size must be an integer between 1 and 1000", nil)
		}
		size = v
	}
	if sch.collection == "consumers" && sc == nil && q.Has("custom_id") {
		// Kong answers a search by custom_id with that consumer alone,
		// unpaginated.
		body := []byte(`{"data":[`)
		if e := st.byUnique("consumers", "custom_id", q.Get("custom_id")); e != nil {
			body = append(body, st.encoded(sch.collection, asString(e["id"]))...)
		}
		writeRaw(w, http.StatusOK, append(body, `],"next":null}`...))
		return nil
	}
	match, apiErr := tagFilter(q.Get("tags"))
	if apiErr != nil {
		return apiErr
	}
	after := ""
	if off := q.Get("offset"); off != "" {
		b, err := base64.RawURLEncoding.DecodeString(off)
		if err != nil || !isUUID(string(b)) {
			return codedError(http.StatusBadRequest, codeInvalidOffset, "'"+off+"' is not a valid offset: bad base64 encoding", nil)
		}
		after = string(b)
	}
	// The page is spliced from the entities' stored encodings: listings
	// are what a sync reads most, and reflection dominated their cost.
	body := []byte(`{"data":[`)
	n, last, more := 0, "", false
	st.scan(sch.collection, sc, after, func(e entity) bool {
		if match != nil && !match(e) {
			return true
		}
		if n == size {
			more = true
			return false
		}
		if n > 0 {
			body = append(body, ',')
		}
		last = asString(e["id"])
		if sch.collection == "certificates" {
			body = appendJSON(body, map[string]any(present(st, sch, e)))
		} else {
			body = append(body, st.encoded(sch.collection, last)...)
		}
		n++
		return true
	})
	body = append(body, `],"next":`...)
	if !more {
		body = append(body, "null}"...)
		writeRaw(w, http.StatusOK, body)
		return nil
	}
	off := base64.RawURLEncoding.EncodeToString([]byte(last))
	next := url.Values{"offset": {off}}
	if q.Get("size") != "" {
		next.Set("size", q.Get("size"))
	}
	if q.Get("tags") != "" {
		next.Set("tags", q.Get("tags"))
	}
	body = appendJSONString(body, r.URL.Path+"?"+next.Encode())
	body = append(body, `,"offset":`...)
	body = appendJSONString(body, off)
	body = append(body, '}')
	writeRaw(w, http.StatusOK, body)
	return nil
}
