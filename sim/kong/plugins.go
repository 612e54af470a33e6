package kong

import "net/netip"

// pluginDef is the configuration schema of one bundled plugin. Only the
// plugins a Kubernetes ingress commonly uses are known; configuring any
// other name fails as it does on a Kong without that plugin.
type pluginDef struct {
	name   string
	config []*field
	// check returns messages about the whole config record.
	check func(cfg map[string]any) []string
	// noConsumer marks plugins that cannot be scoped to a consumer (the
	// authentication plugins, which find the consumer).
	noConsumer bool
}

func (p *pluginDef) configField() *field {
	return &field{name: "config", typ: tRecord, required: true, fields: p.config}
}

func emptyStrArray(name string) *field { return strArray(name).withDefault([]any{}) }

func transformRecord(name string, fs ...string) *field {
	out := make([]*field, len(fs))
	for i, f := range fs {
		out[i] = emptyStrArray(f)
	}
	return record(name, out...)
}

func atLeastOneOf(cfg map[string]any, names ...string) []string {
	for _, n := range names {
		if cfg[n] != nil {
			return nil
		}
	}
	msg := "at least one of these fields must be non-empty: "
	for i, n := range names {
		if i > 0 {
			msg += ", "
		}
		msg += "'config." + n + "'"
	}
	return []string{msg}
}

var plugins = map[string]*pluginDef{}

func positiveNumber(name string) *field {
	return (&field{name: name, typ: tNumber}).checked(positive)
}

// checkIPOrCIDR is Kong's ip_or_cidr type.
func checkIPOrCIDR(v any) string {
	s, _ := v.(string)
	if _, err := netip.ParsePrefix(s); err == nil {
		return ""
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return ""
	}
	return "invalid ip or cidr range: '" + s + "'"
}

func positive(v any) string {
	if f, _ := v.(float64); f <= 0 {
		return "value must be greater than 0"
	}
	return ""
}

func init() {
	number := func(name string) *field { return &field{name: name, typ: tNumber} }
	redis := record("redis",
		str("host"), integer("port").withDefault(6379.0).rng(0, 65535),
		integer("timeout").withDefault(2000.0), str("username"), str("password"),
		integer("database").withDefault(0.0), boolean("ssl", false),
		boolean("ssl_verify", false), str("server_name"))
	for _, p := range []*pluginDef{
		{name: "cors", noConsumer: true, config: []*field{
			strArray("origins"), strArray("headers"), strArray("exposed_headers"),
			strArray("methods").withDefault(strs("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT")),
			number("max_age"),
			boolean("credentials", false), boolean("private_network", false),
			boolean("preflight_continue", false), boolean("allow_origin_absent", true),
		}},
		{name: "rate-limiting", config: []*field{
			positiveNumber("second"), positiveNumber("minute"), positiveNumber("hour"),
			positiveNumber("day"), positiveNumber("month"), positiveNumber("year"),
			str("limit_by").withDefault("consumer").oneof("consumer", "credential", "ip", "service", "header", "path", "consumer-group"),
			str("header_name"), str("path"),
			str("policy").withDefault("local").oneof("local", "cluster", "redis"),
			boolean("fault_tolerant", true), redis,
			boolean("hide_client_headers", false),
			positiveNumber("error_code").withDefault(429.0),
			str("error_message").withDefault("API rate limit exceeded"),
			number("sync_rate").withDefault(-1.0),
		}, check: func(c map[string]any) []string {
			msgs := atLeastOneOf(c, "second", "minute", "hour", "day", "month", "year")
			redis, _ := c["redis"].(map[string]any)
			for _, cond := range []struct {
				field, value string
				missing      bool
			}{
				{"limit_by", "header", c["header_name"] == nil},
				{"limit_by", "path", c["path"] == nil},
				{"policy", "redis", redis["host"] == nil},
			} {
				if c[cond.field] == cond.value && cond.missing {
					msgs = append(msgs, "failed conditional validation given value of field 'config."+cond.field+"'")
				}
			}
			return msgs
		}},
		{name: "key-auth", noConsumer: true, config: []*field{
			strArray("key_names").withDefault(strs("apikey")),
			boolean("hide_credentials", false), str("anonymous"),
			boolean("key_in_header", true), boolean("key_in_query", true),
			boolean("key_in_body", false), boolean("run_on_preflight", true), str("realm"),
		}},
		{name: "basic-auth", noConsumer: true, config: []*field{
			str("anonymous"), boolean("hide_credentials", false), str("realm").withDefault("service"),
		}},
		{name: "jwt", noConsumer: true, config: []*field{
			strSet("uri_param_names").withDefault(strs("jwt")),
			strSet("cookie_names").withDefault([]any{}),
			str("key_claim_name").withDefault("iss"),
			boolean("secret_is_base64", false),
			strSet("claims_to_verify").elemOneOf("exp", "nbf"),
			str("anonymous"), boolean("run_on_preflight", true),
			number("maximum_expiration").withDefault(0.0).rng(0, 31536000),
			strSet("header_names").withDefault(strs("authorization")),
			str("realm"),
		}},
		{name: "hmac-auth", noConsumer: true, config: []*field{
			boolean("hide_credentials", false),
			(&field{name: "clock_skew", typ: tNumber}).withDefault(300.0).checked(positive),
			str("anonymous"),
			boolean("validate_request_body", false),
			strArray("enforce_headers").withDefault([]any{}),
			strArray("algorithms").withDefault(strs("hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512")).
				elemOneOf("hmac-sha1", "hmac-sha256", "hmac-sha384", "hmac-sha512"),
			str("realm"),
		}},
		{name: "acl", noConsumer: true, config: []*field{
			strArray("allow"), strArray("deny"),
			boolean("hide_groups_header", false),
			boolean("include_consumer_groups", false),
			boolean("always_use_authenticated_groups", false),
		}, check: func(c map[string]any) []string { return atLeastOneOf(c, "allow", "deny") }},
		{name: "ip-restriction", config: []*field{
			strArray("allow").elemCheck(checkIPOrCIDR), strArray("deny").elemCheck(checkIPOrCIDR),
			number("status"), str("message"),
		}, check: func(c map[string]any) []string { return atLeastOneOf(c, "allow", "deny") }},
		{name: "request-transformer", config: []*field{
			str("http_method"),
			transformRecord("remove", "body", "headers", "querystring"),
			transformRecord("rename", "body", "headers", "querystring"),
			record("replace", emptyStrArray("body"), emptyStrArray("headers"), emptyStrArray("querystring"), str("uri")),
			transformRecord("add", "body", "headers", "querystring"),
			transformRecord("append", "body", "headers", "querystring"),
		}},
		{name: "response-transformer", config: []*field{
			transformRecord("remove", "json", "headers"),
			transformRecord("rename", "headers", "json"),
			transformRecord("replace", "json", "json_types", "headers"),
			transformRecord("add", "json", "json_types", "headers"),
			transformRecord("append", "json", "json_types", "headers"),
		}},
		{name: "request-termination", config: []*field{
			integer("status_code").withDefault(503.0).rng(100, 599),
			str("message"), str("body"), str("content_type"),
			boolean("echo", false), str("trigger"),
		}, check: func(c map[string]any) []string {
			switch {
			case c["message"] != nil && (c["content_type"] != nil || c["body"] != nil):
				return []string{"message cannot be used with content_type or body"}
			case c["content_type"] != nil && c["body"] == nil:
				return []string{"content_type requires a body"}
			}
			return nil
		}},
		{name: "correlation-id", config: []*field{
			str("header_name").withDefault("Kong-Request-ID"),
			str("generator").withDefault("uuid#counter").oneof("uuid", "uuid#counter", "tracker"),
			boolean("echo_downstream", false),
		}},
		{name: "prometheus", config: []*field{
			boolean("per_consumer", false), boolean("status_code_metrics", false),
			boolean("latency_metrics", false), boolean("bandwidth_metrics", false),
			boolean("upstream_health_metrics", false), boolean("ai_metrics", false),
		}},
		{name: "request-size-limiting", config: []*field{
			integer("allowed_payload_size").withDefault(128.0),
			str("size_unit").withDefault("megabytes").oneof("megabytes", "kilobytes", "bytes"),
			boolean("require_content_length", false),
		}},
		{name: "response-ratelimiting", config: []*field{
			{name: "limits", typ: tMap, elem: &field{typ: tRecord, fields: []*field{
				number("second"), number("minute"), number("hour"), number("day"), number("month"), number("year"),
			}}},
			str("header_name").withDefault("x-kong-limit"),
			str("limit_by").withDefault("consumer").oneof("consumer", "credential", "ip"),
			str("policy").withDefault("local").oneof("local", "cluster", "redis"),
			boolean("fault_tolerant", true), redis,
			boolean("block_on_first_violation", false),
			boolean("hide_client_headers", false),
		}},
	} {
		plugins[p.name] = p
	}
}
