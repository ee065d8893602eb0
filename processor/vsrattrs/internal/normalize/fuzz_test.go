package normalize

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/ptracetest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// checkNormalize runs the properties every input must keep: no span lost, output that
// marshals and reads back, and a second pass that changes nothing.
func checkNormalize(t *testing.T, n *Normalizer, td ptrace.Traces) {
	spans := td.SpanCount()
	n.Traces(td)
	if got := td.SpanCount(); got != spans {
		t.Fatalf("normalize changed the span count: %d -> %d", spans, got)
	}
	var m ptrace.ProtoMarshaler
	buf, err := m.MarshalTraces(td)
	if err != nil {
		t.Fatalf("output does not marshal: %v", err)
	}
	var u ptrace.ProtoUnmarshaler
	back, err := u.UnmarshalTraces(buf)
	if err != nil || back.SpanCount() != spans {
		t.Fatalf("output does not read back: %v", err)
	}
	if _, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td); err != nil {
		t.Fatalf("output is not valid OTLP JSON: %v", err)
	}
	once := ptrace.NewTraces()
	td.CopyTo(once)
	n.Traces(td)
	if err := ptracetest.CompareTraces(once, td); err != nil && !sameJSON(once, td) {
		t.Fatalf("second pass changed the output: %v", err)
	}
	checkCanonicalTypes(t, td)
}

// sameJSON tells equal output from a difference CompareTraces sees only because NaN != NaN.
func sameJSON(a, b ptrace.Traces) bool {
	var m ptrace.JSONMarshaler
	ja, errA := m.MarshalTraces(a)
	jb, errB := m.MarshalTraces(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// checkCanonicalTypes: after fix mode, every span key of the schema on a router span has its
// schema type.
func checkCanonicalTypes(t *testing.T, td ptrace.Traces) {
	wire := map[Type]pcommon.ValueType{TypeString: pcommon.ValueTypeStr, TypeBool: pcommon.ValueTypeBool,
		TypeInt: pcommon.ValueTypeInt, TypeDouble: pcommon.ValueTypeDouble, TypeStringSlice: pcommon.ValueTypeSlice}
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, span := range ss.Spans().All() {
				if _, ok := span.Attributes().Get("vsr.schema.version"); !ok {
					continue
				}
				// A model server's span is held to its own rows only.
				server := routerconv.IsModelServerSpan(ss.Scope(), span.Name()) && !routerconv.IsRouterSpanName(span.Name())
				for _, a := range Schema {
					if server && !a.ModelServer {
						continue
					}
					// Resource and event keys are not a span's: on a span they are unknown keys.
					if v, ok := span.Attributes().Get(a.Key); ok && !a.Resource && !a.Event && v.Type() != wire[a.Type] {
						t.Fatalf("%s has type %s, schema says %s", a.Key, v.Type(), a.Type)
					}
				}
			}
		}
	}
}

func fuzzOptions() Options {
	opts := defaultOptions()
	opts.MaxValueBytes = 256
	return opts
}

// FuzzTraces feeds arbitrary OTLP protobuf, seeded with every era's real traces.
func FuzzTraces(f *testing.F) {
	var m ptrace.ProtoMarshaler
	for seed := range uint64(8) {
		drawer := routersim.NewDrawer(routersim.Mix{EraWeights: [4]float64{1, 1, 1, 1}, ErrorRate: 0.3, BlockedRate: 0.3, CacheHitRate: 0.1, RemoteParentRate: 0.5},
			rand.New(rand.NewPCG(seed, 0)))
		tr := routersim.Build(drawer.Draw(time.Unix(1_700_000_000, 0)), drawer.Rand())
		buf, err := m.MarshalTraces(tr.Traces)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(buf)
	}
	n := New(fuzzOptions())
	f.Fuzz(func(t *testing.T, data []byte) {
		var u ptrace.ProtoUnmarshaler
		td, err := u.UnmarshalTraces(data)
		if err != nil {
			return // malformed OTLP is the receiver's to refuse
		}
		checkNormalize(t, n, td)
	})
}

// FuzzAttribute puts one arbitrary attribute, of any wire type, on each kind of router span.
func FuzzAttribute(f *testing.F) {
	for _, a := range Schema {
		f.Add(a.Key, uint8(0), "true", int64(-1), 0.5, uint8(0))
		for _, l := range a.Legacy {
			f.Add(l.Key, uint8(3), "1.5", int64(7), math.Inf(1), uint8(1))
		}
	}
	f.Add("pii.types", uint8(0), "a,,B, a ,\xff", int64(0), 0.0, uint8(2))
	f.Add("http.path", uint8(0), "/x?a=1&&b", int64(0), 0.0, uint8(3))
	names := []string{"semantic_router.request", "semantic_router.request.received", "semantic_router.upstream.request",
		"semantic_router.plugin.execution", "semantic_router.rag.retrieval", "parse_request"}
	n := New(fuzzOptions())
	f.Fuzz(func(t *testing.T, key string, kind uint8, s string, i int64, d float64, name uint8) {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", routerconv.DefaultServiceNames[int(name)%2])
		spans := rs.ScopeSpans().AppendEmpty().Spans()
		root := spans.AppendEmpty()
		root.SetName("semantic_router.request.received")
		root.SetTraceID(pcommon.TraceID{1})
		root.SetSpanID(pcommon.SpanID{1})
		span := spans.AppendEmpty()
		span.SetName(names[int(name)%len(names)])
		span.SetTraceID(pcommon.TraceID{1})
		span.SetSpanID(pcommon.SpanID{2})
		span.SetParentSpanID(pcommon.SpanID{1})
		attrs := span.Attributes()
		switch kind % 6 {
		case 0:
			attrs.PutStr(key, s)
		case 1:
			attrs.PutInt(key, i)
		case 2:
			attrs.PutBool(key, i%2 == 0)
		case 3:
			attrs.PutDouble(key, d)
		case 4:
			sl := attrs.PutEmptySlice(key)
			sl.AppendEmpty().SetStr(s)
			sl.AppendEmpty().SetInt(i)
		case 5:
			attrs.PutEmptyMap(key).PutStr(s, s)
		}
		attrs.PutStr("http.path", s)
		attrs.PutStr("plugin.status", s)
		checkNormalize(t, n, td)
	})
}
