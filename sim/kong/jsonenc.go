package kong

import (
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendJSON encodes a JSON-shaped value (what encoding/json decodes into
// an any) with sorted object keys, like json.Marshal but without
// reflection: loading large configurations encodes every entity for the
// hash, the store and the response, and reflection dominated that cost.
// skipTop names top-level object keys to leave out; nulls at the top level
// are left out when dropNull is set.
func appendJSON(b []byte, v any) []byte { return appendJSONFiltered(b, v, nil, false) }

func appendJSONFiltered(b []byte, v any, skipTop map[string]bool, dropNull bool) []byte {
	switch t := v.(type) {
	case nil:
		return append(b, "null"...)
	case bool:
		return strconv.AppendBool(b, t)
	case string:
		return appendJSONString(b, t)
	case float64:
		return appendJSONNumber(b, t)
	case int:
		return strconv.AppendInt(b, int64(t), 10)
	case int64:
		return strconv.AppendInt(b, t, 10)
	case []any:
		b = append(b, '[')
		for i, x := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSON(b, x)
		}
		return append(b, ']')
	case []string:
		b = append(b, '[')
		for i, x := range t {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, x)
		}
		return append(b, ']')
	case map[string]any:
		var small [32]string
		keys := small[:0]
		for k, x := range t {
			if skipTop[k] || (dropNull && x == nil) {
				continue
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSON(b, t[k])
		}
		return append(b, '}')
	}
	// Values outside the JSON shape never reach here; encode them as null
	// rather than fail.
	return append(b, "null"...)
}

// memberSpans holds the byte spans of up to two members of an encoded
// object: an entity's created_at and updated_at, with their separating
// comma.
type memberSpans struct {
	n    int
	span [2][2]int
}

func (m *memberSpans) spans() [][2]int { return m.span[:m.n] }

// appendEntityJSON encodes an entity and reports the byte spans (relative
// to the encoding's start) of its created_at and updated_at members, which
// the configuration hash leaves out.
func appendEntityJSON(b []byte, e entity) ([]byte, memberSpans) {
	var small [32]string
	keys := small[:0]
	for k := range e {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var cuts memberSpans
	start := len(b)
	b = append(b, '{')
	for i, k := range keys {
		from := len(b) - start
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSON(b, e[k])
		if (k == "created_at" || k == "updated_at") && cuts.n < len(cuts.span) {
			cuts.span[cuts.n] = [2]int{from, len(b) - start}
			cuts.n++
		}
	}
	return append(b, '}'), cuts
}

func appendJSONNumber(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.AppendInt(b, int64(f), 10)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

const hexDigits = "0123456789abcdef"

func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// jsonStringLen is len(appendJSONString(nil, s)), without encoding when s
// needs no escapes (ids, names).
func jsonStringLen(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return len(appendJSONString(nil, s))
		}
	}
	return len(s) + 2
}
