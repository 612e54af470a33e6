package kong

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// Kong's error codes (kong/db/errors.lua), as the Admin API reports them.
const (
	codeSchemaViolation      = 2
	codePrimaryKeyViolation  = 3
	codeForeignKeyViolation  = 4
	codeUniqueViolation      = 5
	codeInvalidOffset        = 7
	codeInvalidSize          = 9
	codeInvalidOptions       = 11
	codeOperationUnsupported = 12
	codeDeclarativeConfig    = 14
)

var codeNames = map[int]string{
	codeSchemaViolation:      "schema violation",
	codePrimaryKeyViolation:  "primary key violation",
	codeForeignKeyViolation:  "foreign key violation",
	codeUniqueViolation:      "unique constraint violation",
	codeInvalidOffset:        "invalid offset",
	codeInvalidSize:          "invalid size",
	codeInvalidOptions:       "invalid options",
	codeOperationUnsupported: "operation unsupported",
	codeDeclarativeConfig:    "invalid declarative configuration",
}

// apiError is an Admin API error response.
type apiError struct {
	status int
	body   map[string]any
}

func (e *apiError) Error() string { return fmt.Sprint(e.body["message"]) }

func messageError(status int, msg string) *apiError {
	return &apiError{status: status, body: map[string]any{"message": msg}}
}

// codedError is a Kong DAO error. Like Kong it carries the offending
// values under "fields" ("options" for invalid options), and nothing when
// fields is nil.
func codedError(status, code int, msg string, fields map[string]any) *apiError {
	body := map[string]any{"code": code, "name": codeNames[code], "message": msg}
	if fields != nil {
		key := "fields"
		if code == codeInvalidOptions {
			key = "options"
		}
		body[key] = fields
	}
	return &apiError{status: status, body: body}
}

var (
	errNotFound         = messageError(http.StatusNotFound, "Not found")
	errMethodNotAllowed = messageError(http.StatusMethodNotAllowed, "Method not allowed")
	errInternal         = messageError(http.StatusInternalServerError, "An unexpected error occurred")
)

// schemaViolation formats an error tree as Kong's code 2 error.
func schemaViolation(t errTree) *apiError {
	flat := flattenErrTree("", t)
	parts := make([]string, len(flat))
	for i, f := range flat {
		if f.Type == "entity" {
			parts[i] = f.Message
		} else {
			parts[i] = f.Field + ": " + f.Message
		}
	}
	msg := "schema violation (" + strings.Join(parts, "; ") + ")"
	if len(parts) > 1 {
		msg = strconv.Itoa(len(parts)) + " schema violations (" + strings.Join(parts, "; ") + ")"
	}
	return codedError(http.StatusBadRequest, codeSchemaViolation, msg, t)
}

// luaKeyValues renders {a="x",b={id="y"}} as Kong prints unique keys.
func luaKeyValues(kv map[string]any) string {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		var v string
		switch t := kv[k].(type) {
		case nil:
			v = "null"
		case string:
			v = strconv.Quote(t)
		case map[string]any:
			v = luaKeyValues(t)
		default:
			v = fmt.Sprint(t)
		}
		parts[i] = k + "=" + v
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"An unexpected error occurred"}`)
	}
	writeRaw(w, status, b)
}

// writeRaw writes an already encoded JSON body.
func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, e *apiError) { writeJSON(w, e.status, e.body) }
