package sampler

import "go.opentelemetry.io/collector/pdata/ptrace"

// compiledRule is a Rule ready to match.
type compiledRule struct {
	Rule
	values map[string]bool
}

func (r *compiledRule) matches(span ptrace.Span, rs ptrace.ResourceSpans) bool {
	if v, ok := span.Attributes().Get(r.Key); ok {
		return r.values[v.AsString()]
	}
	if v, ok := rs.Resource().Attributes().Get(r.Key); ok {
		return r.values[v.AsString()]
	}
	return false
}
