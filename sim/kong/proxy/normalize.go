package proxy

import "strings"

// normalizePath puts a request path in the form Kong routes on: escapes of
// unreserved characters decoded ("%7E" → "~"), other escapes in upper case,
// runs of slashes merged, and "." and ".." segments resolved, so that
// "/public/../admin" cannot slip past a route on "/admin". The common clean
// path is returned as is, without allocating.
func normalizePath(p string) string {
	if p == "" {
		return "/"
	}
	if !strings.Contains(p, "%") && !strings.Contains(p, "//") && !strings.Contains(p, "/.") {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) && isHex(p[i+1]) && isHex(p[i+2]) {
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			if isUnreserved(v) {
				b.WriteByte(v)
			} else {
				b.WriteByte('%')
				b.WriteByte(upperHex(p[i+1]))
				b.WriteByte(upperHex(p[i+2]))
			}
			i += 2
			continue
		}
		if c == '/' && b.Len() > 0 && strings.HasSuffix(b.String(), "/") {
			continue // merge slashes
		}
		b.WriteByte(c)
	}
	return removeDotSegments(b.String())
}

// removeDotSegments applies RFC 3986 section 5.2.4 to a path whose slashes
// are already merged.
func removeDotSegments(p string) string {
	if !strings.Contains(p, "/.") && !strings.HasPrefix(p, ".") {
		return p
	}
	segments := strings.Split(p, "/")
	out := make([]string, 0, len(segments))
	trailingSlash := false
	for i, s := range segments {
		last := i == len(segments)-1
		switch s {
		case ".":
			trailingSlash = last
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			trailingSlash = last
		default:
			out = append(out, s)
			trailingSlash = false
		}
	}
	res := strings.Join(out, "/")
	if trailingSlash && !strings.HasSuffix(res, "/") {
		res += "/"
	}
	if !strings.HasPrefix(res, "/") {
		res = "/" + res
	}
	return res
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

func upperHex(c byte) byte {
	if 'a' <= c && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
