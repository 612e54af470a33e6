package kong

import (
	"fmt"
	"strings"

	"konductor.dev/sim/kong/atc"
)

// Router flavors, as KONG_ROUTER_FLAVOR spells them. kongsim routes
// traditional like traditional_compatible; expressions adds expression
// routes (package atc) beside traditional-field routes, as Kong 3.x does.
const (
	FlavorTraditional           = "traditional"
	FlavorTraditionalCompatible = "traditional_compatible"
	FlavorExpressions           = "expressions"
)

// DefaultRouterFlavor is Kong's default.
const DefaultRouterFlavor = FlavorTraditionalCompatible

// CheckRouterFlavor refuses a flavor Kong does not know.
func CheckRouterFlavor(f string) error {
	switch f {
	case FlavorTraditional, FlavorTraditionalCompatible, FlavorExpressions:
		return nil
	}
	return fmt.Errorf("router_flavor has an invalid value: '%s' (traditional, traditional_compatible, expressions)", f)
}

// exprRouteSchema is the routes schema under router_flavor = expressions:
// Kong adds the fields expression and priority
// (kong/db/schema/entities/routes.lua) and the checks of validate_route.
var exprRouteSchema *entitySchema

// maxExprPriority is the largest priority Kong accepts: 2^46 - 1.
const maxExprPriority = 1<<46 - 1

func initExprRouteSchema() {
	s := *schemas["routes"]
	s.fields = append(append([]*field(nil), s.fields...),
		str("expression"),
		integer("priority").withDefault(0.0).rng(0, maxExprPriority),
	)
	s.check = checkExprRoute
	exprRouteSchema = &s
}

// schemaOf is the schema of collection coll under a router flavor: only
// routes differ.
func schemaOf(flavor, coll string) *entitySchema {
	if coll == "routes" && flavor == FlavorExpressions {
		return exprRouteSchema
	}
	return schemas[coll]
}

const exprValidation = "Router Expression failed validation: "

// matchFields are the fields that cannot go with an expression.
var matchFields = []string{"methods", "hosts", "paths", "headers", "snis", "sources", "destinations"}

// checkExprRoute is checkRoute with "expression" counted among the fields
// of which an http route must set one, then Kong's validate_route: an
// expression excludes the traditional match fields and regex_priority, a
// priority needs an expression, and the expression must compile against
// the schema of the route's protocols.
func checkExprRoute(e entity) []string {
	var msgs []string
	for _, m := range checkRoute(e) {
		if strings.HasPrefix(m, "must set one of ") && e["expression"] != nil {
			continue // satisfied by the expression
		}
		if rest, ok := strings.CutPrefix(m, "must set one of "); ok {
			i := strings.Index(rest, " when ")
			m = "must set one of " + rest[:i] + ", 'expression'" + rest[i:]
		}
		msgs = append(msgs, m)
	}
	exprSet := e["expression"] != nil
	othersSet := hasAny(e, matchFields...)
	if !exprSet && !othersSet {
		return msgs
	}
	switch {
	case exprSet && othersSet:
		return append(msgs, exprValidation+"cannot set 'expression' with 'methods', 'hosts', 'paths', 'headers', 'snis', 'sources' or 'destinations' simultaneously")
	case exprSet && intOf(e["regex_priority"]) != 0:
		return append(msgs, exprValidation+"cannot set 'regex_priority' with 'expression' simultaneously")
	case othersSet && intOf(e["priority"]) != 0:
		return append(msgs, exprValidation+"cannot set 'priority' with 'methods', 'hosts', 'paths', 'headers', 'snis', 'sources' or 'destinations' simultaneously")
	}
	if exprSet {
		schema := atc.HTTPSchema
		if protos := stringList(e["protocols"]); len(protos) > 0 {
			switch protos[0] {
			case "tcp", "tls", "udp", "tls_passthrough":
				schema = atc.StreamSchema
			}
		}
		if _, err := atc.Compile(asString(e["expression"]), schema); err != nil {
			msgs = append(msgs, exprValidation+err.Error())
		}
	}
	return msgs
}
