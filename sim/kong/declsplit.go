package kong

import (
	"bytes"
	"slices"
	"strings"
)

// docMember is one member of a declarative document's top-level object.
// A collection given as a JSON array is kept as its elements' raw bytes
// (elems, with isArray set) so that elements seen in the previous load
// need no decoding; any other value is decoded into value.
type docMember struct {
	key     string
	value   any
	elems   [][]byte
	isArray bool
}

// maxSplitDepth keeps the splitter's documents well inside encoding/json's
// nesting limit, which applies to the whole document while elements are
// decoded one by one.
const maxSplitDepth = 5000

// splitDocument cuts a JSON document into its top-level members and the
// elements of its collection arrays without decoding them. It checks the
// structure between those pieces strictly; the pieces themselves are
// validated later, by decoding or by equality with bytes that decoded in an
// earlier load. ok is false for whatever it does not handle (YAML, the
// {"config": "<text>"} wrapper, duplicate or escaped keys, malformed
// structure): the caller then decodes the whole document as before, which
// also produces the exact parse errors.
//
// prev, when not nil, is the previous load's cache: an element that
// starts with the bytes of the previous load's element at its index, an
// object, is that object (an object's bytes delimit it), and is taken
// without being scanned.
func splitDocument(body []byte, prev *declCache) (members []docMember, ok bool) {
	s := splitter{b: bytes.TrimSpace(body)}
	if len(s.b) == 0 || s.b[0] != '{' {
		return nil, false
	}
	s.i = 1
	s.space()
	if s.peek() == '}' {
		s.i++
		return nil, s.i == len(s.b)
	}
	for {
		key, ok := s.key()
		if !ok || key == "config" || slices.ContainsFunc(members, func(m docMember) bool { return m.key == key }) {
			return nil, false
		}
		s.space()
		if s.peek() != ':' {
			return nil, false
		}
		s.i++
		s.space()
		m := docMember{key: key}
		if schemas[key] != nil && s.peek() == '[' {
			var seen []*cachedElement
			if prev != nil {
				seen = prev.seq[key]
			}
			if m.elems, ok = s.array(seen); !ok {
				return nil, false
			}
			m.isArray = true
		} else {
			start := s.i
			if !s.value() {
				return nil, false
			}
			if !decodeJSON(s.b[start:s.i], &m.value) {
				return nil, false
			}
		}
		members = append(members, m)
		s.space()
		switch s.peek() {
		case ',':
			s.i++
			s.space()
		case '}':
			s.i++
			// Collected in key order, as decodedMembers lists them.
			slices.SortFunc(members, func(a, b docMember) int { return strings.Compare(a.key, b.key) })
			return members, s.i == len(s.b)
		default:
			return nil, false
		}
	}
}

// splitter walks a JSON text; peek answers 0 at the end.
type splitter struct {
	b []byte
	i int
}

func (s *splitter) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *splitter) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// key reads a member name made of ASCII letters, digits and underscores,
// which is all a declarative document's top level legitimately holds.
func (s *splitter) key() (string, bool) {
	if s.peek() != '"' {
		return "", false
	}
	start := s.i + 1
	for i := start; i < len(s.b); i++ {
		c := s.b[i]
		switch {
		case c == '"':
			s.i = i + 1
			return string(s.b[start:i]), i > start
		case c == '_' || c >= '0' && c <= '9' || c|0x20 >= 'a' && c|0x20 <= 'z':
		default:
			return "", false
		}
	}
	return "", false
}

// array splits the array at s.i into its elements' bytes; seen are the
// elements a previous load had at the same indexes (see splitDocument).
func (s *splitter) array(seen []*cachedElement) ([][]byte, bool) {
	s.i++ // '['
	s.space()
	elems := make([][]byte, 0, len(seen))
	if s.peek() == ']' {
		s.i++
		return elems, true
	}
	for {
		start := s.i
		if n := len(elems); n < len(seen) && len(seen[n].key) > 0 && seen[n].key[0] == '{' &&
			len(s.b)-start >= len(seen[n].key) && string(s.b[start:start+len(seen[n].key)]) == seen[n].key {
			s.i += len(seen[n].key)
		} else if !s.value() {
			return nil, false
		}
		elems = append(elems, s.b[start:s.i])
		s.space()
		switch s.peek() {
		case ',':
			s.i++
			s.space()
		case ']':
			s.i++
			return elems, true
		default:
			return nil, false
		}
	}
}

// value skips one value: a string, a bracketed structure (matched by
// depth only; its content is validated by whoever decodes it) or a bare
// scalar token.
func (s *splitter) value() bool {
	switch c := s.peek(); c {
	case 0:
		return false
	case '"':
		return s.str()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			c := s.b[s.i]
			if !structural[c] {
				s.i++
				continue
			}
			switch c {
			case '"':
				if !s.str() {
					return false
				}
				continue
			case '{', '[':
				depth++
				if depth > maxSplitDepth {
					return false
				}
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return true
				}
			}
			s.i++
		}
		return false
	default:
		start := s.i
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', ']', '}', ' ', '\t', '\n', '\r', '"', '{', '[', ':':
				return s.i > start
			}
			s.i++
		}
		return s.i > start
	}
}

// structural marks the bytes value stops at inside a structure.
var structural = [256]bool{'"': true, '{': true, '[': true, '}': true, ']': true}

// str skips a string. Only its end matters here: a quote not escaped by
// an odd run of backslashes. Whatever else is wrong inside is found by
// the decoder.
func (s *splitter) str() bool {
	i := s.i + 1
	for {
		q := bytes.IndexByte(s.b[i:], '"')
		if q < 0 {
			return false
		}
		i += q
		escapes := 0
		for j := i - 1; j > s.i && s.b[j] == '\\'; j-- {
			escapes++
		}
		i++
		if escapes%2 == 0 {
			s.i = i
			return true
		}
	}
}
