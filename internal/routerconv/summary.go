package routerconv

import (
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// blockReasons are the reasons a Summary holds, by index; 0 is none.
var blockReasons = [...]string{"", ReasonJailbreak, ReasonPII, ReasonGuard}

func blockIndex(reason string) uint8 {
	for i, r := range blockReasons {
		if r == reason {
			return uint8(i)
		}
	}
	return uint8(len(blockReasons) - 1)
}

// Summary is what a whole request was, accumulated from the Facts of every span of its trace,
// in any order and over any number of batches. It is what the root span's summary and the
// request metrics are made of. S is how strings are held: string, or a handle into a table
// when many traces are in flight.
type Summary[S comparable] struct {
	Signals Signals
	Eras    [2]Era
	Cache   Cache
	// block is the first explicit block's reason (index into blockReasons).
	block         uint8
	ErrorType     S
	SelectedModel S
	OriginalModel S
	Category      S
	Decision      S
	UpstreamModel S
}

// Add merges the facts of one of the router's own spans: another service's span in the trace
// (a client, a model server) has no say in what the request was. The first value seen of each
// string wins: each is set by one span of a router trace. Names become metric labels and root
// attributes, so each is held to BoundedName and the error class to ErrorReasons. intern turns
// a non-empty string into S.
func (s *Summary[S]) Add(f *Facts, intern func(string) S) {
	s.Signals |= f.Signals
	s.Eras = NarrowEras(s.Eras, f.Eras)
	s.Cache = max(s.Cache, f.Cache)
	if s.block == 0 && f.BlockReason != "" {
		s.block = blockIndex(f.BlockReason)
	}
	var zero S
	set := func(dst *S, v string) {
		if *dst == zero && v != "" {
			*dst = intern(BoundedName(v))
		}
	}
	if s.ErrorType == zero && f.ErrorReason != "" {
		s.ErrorType = intern(BoundedErrorType(f.ErrorReason))
	}
	set(&s.SelectedModel, f.SelectedModel)
	set(&s.OriginalModel, f.OriginalModel)
	set(&s.Category, f.Category)
	set(&s.Decision, f.Decision)
	set(&s.UpstreamModel, f.UpstreamModel)
}

// Strings calls f with each string the summary holds, for releasing handles.
func (s *Summary[S]) Strings(f func(S)) {
	var zero S
	for _, v := range [...]S{s.ErrorType, s.SelectedModel, s.OriginalModel, s.Category, s.Decision, s.UpstreamModel} {
		if v != zero {
			f(v)
		}
	}
}

// SavedSummary is a Summary with its strings, as encoding/json keeps it across a restart.
type SavedSummary struct {
	Signals       Signals `json:"signals"`
	Eras          [2]Era  `json:"eras"`
	Cache         Cache   `json:"cache"`
	Block         string  `json:"block,omitempty"`
	ErrorType     string  `json:"error_type,omitempty"`
	SelectedModel string  `json:"selected_model,omitempty"`
	OriginalModel string  `json:"original_model,omitempty"`
	Category      string  `json:"category,omitempty"`
	Decision      string  `json:"decision,omitempty"`
	UpstreamModel string  `json:"upstream_model,omitempty"`
}

// Save returns the summary with its strings resolved by str.
func (s *Summary[S]) Save(str func(S) string) SavedSummary {
	return SavedSummary{Signals: s.Signals, Eras: s.Eras, Cache: s.Cache, Block: blockReasons[s.block],
		ErrorType: str(s.ErrorType), SelectedModel: str(s.SelectedModel), OriginalModel: str(s.OriginalModel),
		Category: str(s.Category), Decision: str(s.Decision), UpstreamModel: str(s.UpstreamModel)}
}

// RestoreSummary is the summary v saved, its strings interned again and held to their bounds
// (what a storage file holds is input like any other).
func RestoreSummary[S comparable](v SavedSummary, intern func(string) S) Summary[S] {
	s := Summary[S]{Signals: v.Signals, Eras: v.Eras, Cache: min(v.Cache, CacheHit)}
	if v.Block != "" {
		s.block = blockIndex(v.Block)
	}
	s.Add(&Facts{ErrorReason: v.ErrorType, SelectedModel: v.SelectedModel, OriginalModel: v.OriginalModel,
		Category: v.Category, Decision: v.Decision, UpstreamModel: v.UpstreamModel}, intern)
	return s
}

// Error reports whether any span is an error.
func (s *Summary[S]) Error() bool { return s.Signals&SigError != 0 }

// Blocked reports whether a guard blocked the request, and which: an explicit block, named
// after the guard that matched when the block itself does not say (era D's 403 root), or, in
// the eras that mark no block, a guard match in a request that went no further than its
// guards: era C (a block carries no attribute) and era A's PII detection (its jailbreak block
// says so, its PII block does not). Eras B and D mark every block, so there a match that
// nothing followed is no evidence of one. A guard match in a request that went on was a
// routing signal, not a block. The caller asks once the request can show nothing more.
func (s *Summary[S]) Blocked() (string, bool) {
	hit := s.Signals & (SigJailbreakHit | SigPIIHit)
	if s.block != 0 {
		reason := blockReasons[s.block]
		if reason == ReasonGuard && hit != 0 {
			reason = HitReason(s.Signals)
		}
		return reason, true
	}
	if s.PassedGuards() {
		return "", false
	}
	switch s.Era() {
	case EraC:
		if hit != 0 {
			return HitReason(s.Signals), true
		}
	case EraA:
		if hit&SigPIIHit != 0 {
			return ReasonPII, true
		}
	}
	return "", false
}

// PassedGuards reports whether the request went past the router's guards.
func (s *Summary[S]) PassedGuards() bool {
	return s.Signals&(SigPastGuards|SigUpstream|SigCacheHit) != 0
}

// Era is the era every span agrees on, or EraUnknown.
func (s *Summary[S]) Era() Era { return SingleEra(s.Eras) }

// RoutedModel is the model the router sent the request to: its routing span's, else the one
// its upstream call names (a request routed without a routing span, or whose routing span has
// not come).
func (s *Summary[S]) RoutedModel() S {
	var zero S
	if s.SelectedModel != zero {
		return s.SelectedModel
	}
	return s.UpstreamModel
}

// ResponseModel is the model that answered: the upstream call's, else the routed one.
func (s *Summary[S]) ResponseModel() S {
	var zero S
	if s.UpstreamModel != zero {
		return s.UpstreamModel
	}
	return s.SelectedModel
}

// Timing is when a trace's root started and its last span ended.
type Timing struct {
	RootStart, MaxEnd pcommon.Timestamp
}

// ProcessingMS is the request's duration from the root's start to the last span's end.
func (t Timing) ProcessingMS() (int64, bool) {
	if t.RootStart == 0 || t.MaxEnd < t.RootStart {
		return 0, false
	}
	return int64(t.MaxEnd-t.RootStart) / 1e6, true
}

// WriteSummary puts the request's summary on its root span, as the router's guide promises
// for filtering: the routed model, category, decision, cache result, guard verdict, era and
// processing time, from every span of the trace. str resolves the summary's strings.
func WriteSummary[S comparable](root ptrace.Span, s *Summary[S], t Timing, str func(S) string) {
	attrs := root.Attributes()
	putStr := func(key string, v S) {
		if v := str(v); v != "" {
			attrs.PutStr(key, v)
		}
	}
	attrs.PutStr("vsr.era", s.Era().String())
	putStr("routing.selected_model", s.RoutedModel())
	putStr("category.name", s.Category)
	putStr("decision.name", s.Decision)
	putStr("gen_ai.request.model", s.OriginalModel)
	putStr("gen_ai.response.model", s.ResponseModel())
	if s.Cache != CacheUnknown {
		attrs.PutBool("cache.hit", s.Cache == CacheHit)
	}
	if ms, ok := t.ProcessingMS(); ok {
		attrs.PutInt("processing.time_ms", ms)
	}
	switch reason, blocked := s.Blocked(); {
	case blocked:
		attrs.PutStr("security.action", "blocked")
		attrs.PutStr("security.reason", reason)
		if root.Status().Code() == ptrace.StatusCodeError {
			// The router marks a block with an error status (era D's 403): say which guard.
			attrs.PutStr("error.type", BlockedErrorType(reason))
		}
	case s.PassedGuards():
		attrs.PutStr("security.action", "allowed")
		attrs.Remove("security.reason")
	}
	if v, ok := attrs.Get("error.type"); ok && !strings.HasSuffix(v.AsString(), blockedErrorSuffix) {
		// The root's own failure (the request's class is the record's): held to the fixed set
		// the metrics use, whatever free text it came from.
		attrs.PutStr("error.type", errorReason(v.AsString(), root))
	}
}

// WriteModel names the model on an upstream call that does not (era A), with the gen_ai and
// OpenInference keys an LLM span carries.
func WriteModel(span ptrace.Span, model string) {
	if model == "" {
		return
	}
	attrs := span.Attributes()
	for _, key := range [...]string{"gen_ai.request.model", "gen_ai.response.model", "llm.model_name"} {
		if _, ok := attrs.Get(key); !ok {
			attrs.PutStr(key, model)
		}
	}
}
