package normalize

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/leakcorpus"
)

// placement builds OTLP JSON with secrets at random places and nestings: attributes can repeat
// there, as in OTLP from the wire. Keys to spell with an invalid byte carry badKey, replaced
// after decoding (JSON cannot carry one).
type placement struct {
	rng     *rand.Rand
	gen     *leakcorpus.Gen
	secrets []leakcorpus.Secret
	router  bool
}

const badKey = "~bad~"

type kv struct {
	Key   string         `json:"key"`
	Value map[string]any `json:"value"`
}

func str(s string) map[string]any { return map[string]any{"stringValue": s} }

// nest wraps v in maps and arrays under generic keys, depth levels deep.
func (p *placement) nest(v map[string]any, depth int) map[string]any {
	for range depth {
		if p.rng.IntN(2) == 0 {
			v = map[string]any{"arrayValue": map[string]any{"values": []any{str("x"), v}}}
		} else {
			v = map[string]any{"kvlistValue": map[string]any{"values": []kv{{Key: []string{"data", "ctx", "payload"}[p.rng.IntN(3)], Value: v}}}}
		}
	}
	return v
}

// spell writes a key as senders do: any case, trailing space, an invisible or invalid byte.
func (p *placement) spell(k string) string {
	switch p.rng.IntN(8) {
	case 0:
		return strings.ToUpper(k)
	case 1:
		return k + " "
	case 2:
		return k + badKey
	case 3:
		if i := strings.IndexByte(k, '.'); i > 0 {
			return k[:i] + "\u200b" + k[i:]
		}
	case 4:
		return strings.ToUpper(k[:1]) + k[1:]
	}
	return k
}

// familyAttr is a family's key (spelled and nested at random) holding a marker.
func (p *placement) familyAttr() []kv {
	var keyed []Family
	for _, f := range Families {
		if (len(f.Keys) > 0 || len(f.Words) > 0) && (!f.RouterOnly || p.router) {
			keyed = append(keyed, f)
		}
	}
	f := keyed[p.rng.IntN(len(keyed))]
	s := p.gen.Marker(f.ID, "fuzz")
	p.secrets = append(p.secrets, s)
	var key string
	if len(f.Keys) > 0 {
		key = f.Keys[p.rng.IntN(len(f.Keys))]
	} else {
		key = "app." + strings.ReplaceAll(strings.TrimSuffix(f.Words[p.rng.IntN(len(f.Words))], " $"), " ", []string{"_", "-", "."}[p.rng.IntN(3)])
	}
	nestable := strings.Contains(key, ".")
	value := s.Value
	if f.Class == ClassURL {
		value = "https://x.example/a?p=" + s.Value
	}
	v := str(value)
	// Under the key, the data can go on nesting (not into a structure key).
	if f.Class == ClassContent && len(f.Keys) > 0 {
		switch p.rng.IntN(3) {
		case 1:
			key += ".0.content"
		case 2:
			v = map[string]any{"kvlistValue": map[string]any{"values": []kv{{Key: "text", Value: v}}}}
		}
	}
	// Two-part keys are found nested under any map; one-part keys only at the top.
	if nestable && p.rng.IntN(3) == 0 {
		v = p.nest(map[string]any{"kvlistValue": map[string]any{"values": []kv{{Key: p.spell(key), Value: v}}}}, p.rng.IntN(3))
		key = "request"
	} else {
		key = p.spell(key)
	}
	attrs := []kv{{Key: key, Value: v}}
	if p.rng.IntN(4) == 0 {
		// The same key again, another secret in it.
		s2 := p.gen.Marker(f.ID, "fuzz repeat")
		p.secrets = append(p.secrets, s2)
		attrs = append(attrs, kv{Key: key, Value: str(strings.Replace(value, s.Value, s2.Value, 1))})
	}
	return attrs
}

// kindText is a scanner kind's secret in a sentence.
func (p *placement) kindText() string {
	text, s := p.gen.Value(leakcorpus.Kinds[p.rng.IntN(len(leakcorpus.Kinds))], "fuzz")
	p.secrets = append(p.secrets, s)
	return "note " + text + " end"
}

// kindAttr is a scanner kind's secret under any key, nested at random.
func (p *placement) kindAttr() []kv {
	key := []string{"app.note", "error.type", "routing.reason", "category.name", "x", "gen_ai.response.model"}[p.rng.IntN(6)]
	return []kv{{Key: p.spell(key), Value: p.nest(str(p.kindText()), p.rng.IntN(4))}}
}

func (p *placement) attrs(n int) []kv {
	var out []kv
	for range n {
		if p.rng.IntN(2) == 0 {
			out = append(out, p.familyAttr()...)
		} else {
			out = append(out, p.kindAttr()...)
		}
	}
	return out
}

// trace is one resource with one span, secrets everywhere a span carries strings.
func (p *placement) trace() map[string]any {
	service := "checkout"
	name := "work"
	if p.router {
		service, name = "vllm-sr", "semantic_router.request.received"
	}
	if p.rng.IntN(4) == 0 {
		name = "GET /users/" + p.kindText()
	}
	content := p.gen.Marker("genai_events", "fuzz event body")
	p.secrets = append(p.secrets, content)
	span := map[string]any{
		"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708", "name": name,
		"attributes": p.attrs(1 + p.rng.IntN(4)),
		"status":     map[string]any{"code": 2, "message": p.kindText()},
		"traceState": "acme=" + strings.ReplaceAll(p.kindText(), ",", ";") + ",ot=th:8",
		"events": []any{
			map[string]any{"name": p.kindText(), "attributes": p.attrs(p.rng.IntN(3))},
			map[string]any{"name": "gen_ai.user.message", "attributes": []kv{{Key: "content", Value: p.nest(str(content.Value), p.rng.IntN(3))}}},
		},
		"links": []any{map[string]any{"traceId": "0a0b0000000000000000000000000000", "spanId": "0a0b000000000000", "attributes": p.attrs(p.rng.IntN(3))}},
	}
	return map[string]any{
		"resource": map[string]any{"attributes": append([]kv{{Key: "service.name", Value: str(service)}}, p.attrs(p.rng.IntN(3))...)},
		"scopeSpans": []any{map[string]any{
			"scope": map[string]any{"name": "s", "attributes": p.attrs(p.rng.IntN(2))},
			"spans": []any{span},
		}},
	}
}

// withBadKeys gives the keys marked badKey their invalid byte.
func withBadKeys(m pcommon.Map) {
	var bad []string
	for k, v := range m.All() {
		if strings.Contains(k, badKey) {
			bad = append(bad, k)
		}
		withBadKeysIn(v)
	}
	for _, k := range bad {
		v, _ := m.Get(k)
		moved := pcommon.NewValueEmpty()
		v.CopyTo(moved)
		m.RemoveIf(func(key string, _ pcommon.Value) bool { return key == k })
		moved.CopyTo(m.PutEmpty(strings.Replace(k, badKey, "\xff", 1)))
	}
}

func withBadKeysIn(v pcommon.Value) {
	switch v.Type() {
	case pcommon.ValueTypeMap:
		withBadKeys(v.Map())
	case pcommon.ValueTypeSlice:
		for _, e := range v.Slice().All() {
			withBadKeysIn(e)
		}
	}
}

func eachMap(td ptrace.Traces, fn func(pcommon.Map)) {
	for _, rs := range td.ResourceSpans().All() {
		fn(rs.Resource().Attributes())
		for _, ss := range rs.ScopeSpans().All() {
			fn(ss.Scope().Attributes())
			for _, s := range ss.Spans().All() {
				fn(s.Attributes())
				for _, e := range s.Events().All() {
					fn(e.Attributes())
				}
				for _, l := range s.Links().All() {
					fn(l.Attributes())
				}
			}
		}
	}
}

// FuzzNoSecretSurvives places the corpus's kinds of secrets (family markers and scanner kinds)
// at random places, nestings, spellings and repeats, on the router's spans and another
// service's, in every mode, with a hash key and without: none may come out.
func FuzzNoSecretSurvives(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(seed, []byte{byte(seed)})
	}
	normalizers := [6]*Normalizer{}
	for i := range normalizers {
		opts := privacyOptions(Mode(i%3), "")
		if i >= 3 {
			opts.HashKey = []byte("fuzz-hash-key-0123456789")
		}
		normalizers[i] = New(opts)
	}
	f.Fuzz(func(t *testing.T, seed uint64, data []byte) {
		h := fnv.New64a()
		h.Write(data)
		rng := rand.New(rand.NewPCG(seed, h.Sum64()))
		p := &placement{rng: rng, gen: leakcorpus.NewGen(fmt.Sprintf("f%d", seed%1000)), router: rng.IntN(2) == 0}
		js, err := json.Marshal(map[string]any{"resourceSpans": []any{p.trace()}})
		require.NoError(t, err)
		td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(js)
		require.NoError(t, err, "%s", js)
		eachMap(td, withBadKeys)
		secrets := p.secrets
		require.NotEmpty(t, leakcorpus.Leaks(secrets, encoded(t, td)))
		normalizers[rng.IntN(len(normalizers))].Traces(td)
		if leaks := leakcorpus.Leaks(secrets, encoded(t, td)); len(leaks) > 0 {
			t.Fatalf("secrets left:%s\nin %s", describe(leaks), js)
		}
	})
}
