package proxy

import "strings"

// upstreamPath computes the path sent upstream the way Kong does: the
// service path joined with either the whole request path or, with
// strip_path, what is left of it after the part the route's path matched.
// matched is that part ("" when the route has no paths). handling is the
// route's path_handling; "v0" (the default) never produces a double slash at
// the join and keeps a trailing slash only when the request had one, while
// "v1" concatenates more literally.
func upstreamPath(handling string, stripPath bool, servicePath, reqPath, matched string) string {
	base := servicePath
	if base == "" {
		base = "/"
	}
	if reqPath == "" {
		reqPath = "/"
	}
	rest := reqPath[1:] // without a matched part, only the leading slash goes
	if stripPath && matched != "" {
		rest = sanitizePostfix(reqPath[len(matched):])
	}
	baseSlash := base[len(base)-1] == '/'

	if handling == "v1" {
		if !stripPath {
			return base + reqPath[1:]
		}
		if baseSlash && strings.HasPrefix(rest, "/") {
			return base[:len(base)-1] + rest
		}
		return base + rest
	}

	switch {
	case !stripPath && baseSlash:
		return base + reqPath[1:]
	case !stripPath && reqPath == "/":
		return base
	case !stripPath:
		return base + reqPath
	case rest == "" && baseSlash:
		if base == "/" || strings.HasSuffix(reqPath, "/") {
			return base
		}
		return base[:len(base)-1]
	case rest == "":
		if len(reqPath) > 1 && strings.HasSuffix(reqPath, "/") {
			return base + "/"
		}
		return base
	case rest[0] == '/' && baseSlash:
		return base[:len(base)-1] + rest
	case rest[0] == '/':
		return base + rest
	case baseSlash:
		return base + rest
	}
	return base + "/" + rest
}

// sanitizePostfix drops a leading "." or ".." segment from what remains after
// stripping, so that stripping cannot climb above the service path.
func sanitizePostfix(s string) string {
	switch {
	case s == "." || s == "..":
		return ""
	case strings.HasPrefix(s, "./"):
		return s[2:]
	case strings.HasPrefix(s, "../"):
		return s[3:]
	}
	return s
}
