// Package leakcorpus builds the project's corpus of secrets and personal data, placed where LLM
// stacks really put them: OpenInference and OpenLLMetry client spans, OTel GenAI spans and
// events, Langfuse keys, HTTP middleware (URLs, headers, client addresses), process resources,
// the router's own spans and its model server's, in nested maps and arrays, under repeated keys
// and odd spellings. Each secret is unique, so that any copy of it can be found in whatever the
// collector writes: exported spans, spill files, storage, metrics, logs. vsr_attributes' tests
// (unit, processor, fuzz) and the end-to-end tests use it.
package leakcorpus

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/big"
	"math/rand/v2"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
	"github.com/otelcol-vsr/otelcol-vsr/internal/routersim"
)

// Secret is one private value of the corpus.
type Secret struct {
	// Value is what was placed.
	Value string
	// Needles are what any copy of it contains: the value, and the digits of a number.
	Needles []string
	// Family is the redaction family, or the scanner kind, it stands for.
	Family string
	// Where it was placed.
	Where string
}

// Corpus is traces carrying secrets.
type Corpus struct {
	Traces  ptrace.Traces
	Secrets []Secret
	// TraceIDs are the corpus's traces, each with a root span.
	TraceIDs []pcommon.TraceID
}

// Leaks returns the secrets of which data holds a copy, and where.
func (c Corpus) Leaks(data []byte) []Secret {
	return Leaks(c.Secrets, data)
}

// Leaks returns the secrets of which data holds a copy.
func Leaks(secrets []Secret, data []byte) []Secret {
	var found []Secret
	for _, s := range secrets {
		for _, n := range s.Needles {
			if bytes.Contains(data, []byte(n)) {
				found = append(found, s)
				break
			}
		}
	}
	return found
}

// Gen makes unique secrets of every kind, for tests that place them themselves (fuzzing).
type Gen struct{ b builder }

// NewGen returns a generator whose secrets carry tag.
func NewGen(tag string) *Gen {
	h := fnv.New64a()
	h.Write([]byte(tag))
	return &Gen{b: builder{tag: tag, base: int(h.Sum64() % 4000), td: ptrace.NewTraces(), rng: rand.New(rand.NewPCG(1, 2))}}
}

// Kinds are the scanner kinds Value makes.
var Kinds = []string{"email", "phone", "payment_card", "us_ssn", "iban", "api_key", "jwt", "bearer_token", "basic_auth", "url_credentials", "secret_assignment"}

// Value returns a secret of a scanner kind, in the text it comes in.
func (g *Gen) Value(kind, where string) (text string, secret Secret) {
	b := &g.b
	switch kind {
	case "email":
		text = b.email(where)
	case "phone":
		text = b.phone(where)
	case "payment_card":
		text = b.card(where)
	case "us_ssn":
		text = b.ssn(where)
	case "iban":
		text = b.iban(where)
	case "api_key":
		text = b.apiKey(where)
	case "jwt":
		text = b.jwt(where)
	case "bearer_token":
		text, _ = b.bearer(where)
	case "basic_auth":
		text = "Basic " + b.basic(where)
	case "url_credentials":
		text = "https://svc:" + b.password(where) + "@db.example.com/"
	case "secret_assignment":
		b.n++
		text = "password=" + b.add(fmt.Sprintf("leak%sPass%03d", b.tag, b.n), "secret_assignment", where)
	default:
		panic("leakcorpus: no kind " + kind)
	}
	return text, b.secrets[len(b.secrets)-1]
}

// Marker returns free text standing for a family's value: only the family's rule catches it.
func (g *Gen) Marker(family, where string) Secret {
	g.b.marker(family, where)
	return g.b.secrets[len(g.b.secrets)-1]
}

// Build makes the corpus; tag (letters and digits) makes its secrets unique to one test.
func Build(tag string) Corpus {
	h := fnv.New64a()
	h.Write([]byte(tag))
	b := &builder{tag: tag, base: int(h.Sum64() % 4000), td: ptrace.NewTraces(), rng: rand.New(rand.NewPCG(h.Sum64(), 23))}
	b.openInferenceApp()
	b.openLLMetryAgent()
	b.genAIClient()
	b.httpGateway()
	b.router()
	b.duplicates()
	return Corpus{Traces: b.td, Secrets: b.secrets, TraceIDs: b.traceIDs}
}

type builder struct {
	tag string
	n   int
	// base makes the numbers (phones, cards…) of one tag differ from another's.
	base     int
	td       ptrace.Traces
	rng      *rand.Rand
	secrets  []Secret
	traceIDs []pcommon.TraceID
}

var start = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func (b *builder) add(value, family, where string, needles ...string) string {
	b.secrets = append(b.secrets, Secret{Value: value, Needles: append([]string{value}, needles...), Family: family, Where: where})
	return value
}

// marker is free text that only its family's rule can catch: a prompt, an ID.
func (b *builder) marker(family, where string) string {
	b.n++
	return b.add(fmt.Sprintf("leak%sq%03dz%s", b.tag, b.n, strings.ReplaceAll(family, "_", "")), family, where)
}

// prose is a sentence carrying a marker, as prompts and documents are.
func (b *builder) prose(family, where string) string {
	return "Please summarise the account notes of " + b.marker(family, where) + " before the call."
}

func (b *builder) email(where string) string {
	b.n++
	local := fmt.Sprintf("leak.%s.%d", b.tag, b.n)
	return b.add(local+"@mail-example.com", "email", where, local+"@")
}

func (b *builder) phone(where string) string {
	b.n++
	n := (b.base + b.n) % 10000
	d := fmt.Sprintf("1415555%04d", n)
	return b.add(fmt.Sprintf("+1 415 555 %04d", n), "phone", where, d, d[1:])
}

func (b *builder) card(where string) string {
	b.n++
	body := fmt.Sprintf("4%014d", 73_000_000_000_000+int64(b.base)*1_000_000+int64(b.n)*7919)
	digits := body + luhnDigit(body)
	return b.add(digits[0:4]+" "+digits[4:8]+" "+digits[8:12]+" "+digits[12:16], "payment_card", where, digits)
}

func (b *builder) ssn(where string) string {
	b.n++
	n := b.base + b.n
	v := fmt.Sprintf("%03d-%02d-%04d", 100+n%500, 10+n%89, 1000+n%9000)
	return b.add(v, "us_ssn", where, strings.ReplaceAll(v, "-", ""))
}

func (b *builder) iban(where string) string {
	b.n++
	bban := fmt.Sprintf("37040044%010d", 532013000+b.base*1000+b.n)
	compact := "DE" + ibanCheck("DE", bban) + bban
	var grouped strings.Builder
	for i := 0; i < len(compact); i += 4 {
		if i > 0 {
			grouped.WriteByte(' ')
		}
		grouped.WriteString(compact[i:min(i+4, len(compact))])
	}
	return b.add(grouped.String(), "iban", where, compact)
}

func (b *builder) apiKey(where string) string {
	b.n++
	return b.add(fmt.Sprintf("sk-proj-leak%s%03dAbCdEfGhIjKlMnOpQr", b.tag, b.n), "api_key", where)
}

func (b *builder) jwt(where string) string {
	b.n++
	enc := base64.RawURLEncoding
	payload := enc.EncodeToString(fmt.Appendf(nil, `{"sub":"leak%s%03d","email":"x@y.io"}`, b.tag, b.n))
	v := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + payload + ".c2lnbmF0dXJlLWxlYWstc2ln"
	return b.add(v, "jwt", where, payload)
}

func (b *builder) bearer(where string) (header, token string) {
	b.n++
	token = b.add(fmt.Sprintf("leak%sT%03dtok3n", b.tag, b.n), "bearer_token", where)
	return "Bearer " + token, token
}

func (b *builder) basic(where string) string {
	b.n++
	return b.add(base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "leak%s:%03dpw", b.tag, b.n)), "basic_auth", where)
}

func (b *builder) password(where string) string {
	b.n++
	return b.add(fmt.Sprintf("leak%sPw%03d", b.tag, b.n), "url_credentials", where)
}

func luhnDigit(body string) string {
	sum := 0
	for i := 0; i < len(body); i++ {
		d := int(body[len(body)-1-i] - '0')
		if i%2 == 0 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return fmt.Sprint((10 - sum%10) % 10)
}

func ibanCheck(country, bban string) string {
	var digits strings.Builder
	for _, c := range bban + country + "00" {
		if c >= 'A' && c <= 'Z' {
			fmt.Fprint(&digits, int(c-'A')+10)
		} else {
			digits.WriteRune(c)
		}
	}
	n, _ := new(big.Int).SetString(digits.String(), 10)
	return fmt.Sprintf("%02d", 98-new(big.Int).Mod(n, big.NewInt(97)).Int64())
}

// trace starts a trace of service with a root span named name.
func (b *builder) trace(service, scope string) (ptrace.ResourceSpans, ptrace.SpanSlice, pcommon.TraceID) {
	rs := b.td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", service)
	ss := rs.ScopeSpans().AppendEmpty()
	ss.Scope().SetName(scope)
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[:8], b.rng.Uint64())
	binary.BigEndian.PutUint64(id[8:], b.rng.Uint64())
	b.traceIDs = append(b.traceIDs, id)
	return rs, ss.Spans(), id
}

// span adds a span; parent 0 makes it the root.
func span(spans ptrace.SpanSlice, id pcommon.TraceID, sid, parent byte, name string, kind ptrace.SpanKind) ptrace.Span {
	s := spans.AppendEmpty()
	s.SetTraceID(id)
	s.SetSpanID(pcommon.SpanID{id[0], id[1], sid})
	if parent != 0 {
		s.SetParentSpanID(pcommon.SpanID{id[0], id[1], parent})
	}
	s.SetName(name)
	s.SetKind(kind)
	s.SetStartTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Duration(sid) * time.Millisecond)))
	s.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(time.Second - time.Duration(sid)*time.Millisecond)))
	return s
}

// openInferenceApp is a LangChain RAG app instrumented with OpenInference.
func (b *builder) openInferenceApp() {
	rs, spans, id := b.trace("rag-app", "openinference.instrumentation.langchain")
	res := rs.Resource().Attributes()
	res.PutStr("process.command_line", "python app.py --openai-api-key="+b.apiKey("resource process.command_line"))
	res.PutStr("process.environment_variable.OPENAI_API_KEY", b.apiKey("resource process.environment_variable"))

	chain := span(spans, id, 1, 0, "RetrievalQA", ptrace.SpanKindInternal)
	a := chain.Attributes()
	a.PutStr("openinference.span.kind", "CHAIN")
	a.PutStr("input.value", b.prose("openinference_io", "CHAIN input.value"))
	a.PutStr("input.mime_type", "text/plain")
	a.PutStr("output.value", b.prose("openinference_io", "CHAIN output.value"))
	a.PutStr("metadata", `{"customer":"`+b.marker("openinference_tools", "metadata JSON")+`"}`)
	a.PutStr("session.id", b.marker("session_identity", "CHAIN session.id"))
	a.PutStr("user.id", b.marker("user_identity", "CHAIN user.id"))
	a.PutStr("app.note", "call back "+b.phone("app.note (free text)")+" or "+b.email("app.note (free text)")+
		", key "+b.apiKey("app.note (free text)"))
	header, _ := b.bearer("debug.curl (free text)")
	a.PutStr("debug.curl", "curl -H 'Authorization: "+header+"' -H 'Proxy-Authorization: Basic "+b.basic("debug.curl (free text)")+"'")

	llm := span(spans, id, 2, 1, "ChatOpenAI", ptrace.SpanKindClient)
	a = llm.Attributes()
	a.PutStr("openinference.span.kind", "LLM")
	a.PutStr("llm.model_name", "gpt-4o")
	a.PutStr("llm.input_messages.0.message.role", "system")
	a.PutStr("llm.input_messages.0.message.content", b.prose("openinference_messages", "llm.input_messages.0.message.content"))
	a.PutStr("llm.input_messages.1.message.role", "user")
	a.PutStr("llm.input_messages.1.message.contents.0.message_content.type", "text")
	a.PutStr("llm.input_messages.1.message.contents.0.message_content.text", b.prose("openinference_messages", "message_content.text"))
	a.PutStr("llm.output_messages.0.message.content", b.prose("openinference_messages", "llm.output_messages content"))
	a.PutStr("llm.output_messages.0.message.tool_calls.0.tool_call.function.name", "lookup_account")
	a.PutStr("llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments",
		`{"account":"`+b.marker("openinference_messages", "tool_call.function.arguments")+`"}`)
	a.PutStr("llm.prompt_template.template", "Answer {question} for "+b.marker("openinference_messages", "prompt template"))
	a.PutStr("llm.prompt_template.variables", `{"question":"`+b.marker("openinference_messages", "template variables")+`"}`)
	a.PutStr("llm.invocation_parameters", `{"model":"gpt-4o","user":"`+b.email("llm.invocation_parameters user")+`"}`)
	a.PutInt("llm.token_count.prompt", 1200)
	// The same messages as a nested map, as some instrumentations and SDKs record them.
	nested := a.PutEmptyMap("llm")
	msg := nested.PutEmptySlice("input_messages").AppendEmpty().SetEmptyMap().PutEmptyMap("message")
	msg.PutStr("role", "user")
	msg.PutStr("content", b.prose("openinference_messages", "llm = {input_messages: [{message: {content}}]}"))
	req := a.PutEmptyMap("request")
	req.PutStr("user.id", b.marker("user_identity", "request = {user.id}"))
	req.PutEmptyMap("body").PutStr("contact", b.email("request = {body: {contact}}"))
	ev := llm.Events().AppendEmpty()
	ev.SetName("exception")
	ev.Attributes().PutStr("exception.type", "openai.BadRequestError")
	ev.Attributes().PutStr("exception.message", "invalid input: "+b.prose("exception_text", "exception.message"))
	ev.Attributes().PutStr("exception.stacktrace", "Traceback: prompt="+b.marker("exception_text", "exception.stacktrace"))
	llm.Status().SetCode(ptrace.StatusCodeError)
	llm.Status().SetMessage("rate limited for " + b.email("status message") + " card " + b.card("status message"))

	ret := span(spans, id, 3, 1, "VectorStoreRetriever", ptrace.SpanKindInternal)
	a = ret.Attributes()
	a.PutStr("openinference.span.kind", "RETRIEVER")
	a.PutStr("retrieval.documents.0.document.id", "doc-17")
	a.PutDouble("retrieval.documents.0.document.score", 0.91)
	a.PutStr("retrieval.documents.0.document.content", b.prose("openinference_retrieval", "retrieval.documents.0.document.content"))
	a.PutStr("retrieval.documents.0.document.metadata", `{"owner":"`+b.marker("openinference_retrieval", "document.metadata")+`"}`)
	a.PutStr("embedding.embeddings.0.embedding.text", b.prose("openinference_retrieval", "embedding.text"))
	a.PutStr("reranker.query", b.prose("openinference_retrieval", "reranker.query"))
	a.PutStr("reranker.input_documents.0.document.content", b.prose("openinference_retrieval", "reranker document"))

	tool := span(spans, id, 4, 1, "lookup_account", ptrace.SpanKindInternal)
	a = tool.Attributes()
	a.PutStr("openinference.span.kind", "TOOL")
	a.PutStr("tool.name", "lookup_account")
	a.PutStr("tool.parameters", `{"iban":"`+b.marker("openinference_tools", "tool.parameters")+`"}`)
	a.PutStr("output.value", "IBAN on file: "+b.iban("TOOL output.value (content)"))
}

// openLLMetryAgent is an agent instrumented with OpenLLMetry, traced into Langfuse too.
func (b *builder) openLLMetryAgent() {
	_, spans, id := b.trace("support-agent", "opentelemetry.instrumentation.openai.v1")
	wf := span(spans, id, 1, 0, "support_workflow.workflow", ptrace.SpanKindInternal)
	a := wf.Attributes()
	a.PutStr("traceloop.span.kind", "workflow")
	a.PutStr("traceloop.entity.input", `{"args":["`+b.marker("openllmetry_entities", "traceloop.entity.input")+`"]}`)
	a.PutStr("traceloop.entity.output", `"`+b.marker("openllmetry_entities", "traceloop.entity.output")+`"`)
	a.PutStr("traceloop.association.properties.user_id", b.marker("framework_identity", "association user_id"))
	a.PutStr("traceloop.association.properties.session_id", b.marker("framework_identity", "association session_id"))
	a.PutStr("langfuse.user.id", b.marker("user_identity", "langfuse.user.id"))
	a.PutStr("langfuse.session.id", b.marker("session_identity", "langfuse.session.id"))
	a.PutStr("langfuse.trace.input", b.prose("langfuse_io", "langfuse.trace.input"))
	a.PutStr("langfuse.trace.metadata.customer", b.marker("langfuse_io", "langfuse.trace.metadata.customer"))
	a.PutStr("ai.telemetry.metadata.userId", b.marker("framework_identity", "ai.telemetry.metadata.userId"))

	chat := span(spans, id, 2, 1, "openai.chat", ptrace.SpanKindClient)
	a = chat.Attributes()
	a.PutStr("gen_ai.system", "openai")
	a.PutStr("gen_ai.request.model", "gpt-4o-mini")
	a.PutStr("llm.request.type", "chat")
	a.PutStr("gen_ai.prompt.0.role", "user")
	a.PutStr("gen_ai.prompt.0.content", b.prose("genai_indexed", "gen_ai.prompt.0.content"))
	a.PutStr("gen_ai.completion.0.role", "assistant")
	a.PutStr("gen_ai.completion.0.content", b.prose("genai_indexed", "gen_ai.completion.0.content"))
	a.PutStr("gen_ai.completion.0.tool_calls.0.name", "refund")
	a.PutStr("gen_ai.completion.0.tool_calls.0.arguments", `{"card":"`+b.marker("genai_indexed", "completion tool_calls arguments")+`"}`)
	a.PutStr("llm.user", b.marker("user_identity", "llm.user"))
	header, _ := b.bearer("llm.headers")
	a.PutStr("llm.headers", `{"Authorization": "`+header+`"}`)
	a.PutInt("gen_ai.usage.input_tokens", 311)
	a.PutStr("langfuse.observation.output", b.prose("langfuse_io", "langfuse.observation.output"))

	db := span(spans, id, 3, 1, "chroma.query", ptrace.SpanKindClient)
	ev := db.Events().AppendEmpty()
	ev.SetName("db.query.result")
	ev.Attributes().PutStr("db.query.result.id", "r1")
	ev.Attributes().PutStr("db.query.result.document", b.prose("openllmetry_entities", "db.query.result.document event"))
	mcp := span(spans, id, 4, 1, "tools/call refund", ptrace.SpanKindClient)
	mcp.Attributes().PutStr("mcp.request.argument", `{"ssn":"`+b.ssn("mcp.request.argument")+`"}`)
	mcp.Attributes().PutStr("mcp.response.value", b.prose("openllmetry_entities", "mcp.response.value"))
}

// genAIClient follows the OTel GenAI conventions: structured messages, events, links.
func (b *builder) genAIClient() {
	rs, spans, id := b.trace("assistant-api", "opentelemetry.instrumentation.openai_v2")
	rs.ScopeSpans().At(0).Scope().Attributes().PutStr("user.email", b.email("scope user.email"))
	chat := span(spans, id, 1, 0, "chat gpt-4o", ptrace.SpanKindClient)
	a := chat.Attributes()
	a.PutStr("gen_ai.operation.name", "chat")
	a.PutStr("gen_ai.provider.name", "openai")
	a.PutStr("gen_ai.conversation.id", b.marker("session_identity", "gen_ai.conversation.id"))
	a.PutStr("gen_ai.input.messages", `[{"role":"user","parts":[{"type":"text","content":"`+b.marker("genai_messages", "gen_ai.input.messages JSON")+`"}]}]`)
	a.PutStr("gen_ai.system_instructions", `[{"type":"text","content":"`+b.marker("genai_messages", "gen_ai.system_instructions")+`"}]`)
	out := a.PutEmptySlice("gen_ai.output.messages").AppendEmpty().SetEmptyMap()
	out.PutStr("role", "assistant")
	out.PutEmptySlice("parts").AppendEmpty().SetEmptyMap().PutStr("content", b.prose("genai_messages", "gen_ai.output.messages structured"))
	args := a.PutEmptyMap("gen_ai.tool.call.arguments")
	args.PutStr("location", b.marker("genai_messages", "gen_ai.tool.call.arguments map"))
	a.PutStr("gen_ai.tool.call.result", b.prose("genai_messages", "gen_ai.tool.call.result"))
	a.PutStr("gen_ai.response.model", "gpt-4o-2024-08-06")

	events := chat.Events()
	for _, e := range []struct{ name, key string }{
		{"gen_ai.system.message", "content"}, {"gen_ai.user.message", "content"}, {"gen_ai.tool.message", "content"},
	} {
		ev := events.AppendEmpty()
		ev.SetName(e.name)
		ev.Attributes().PutStr("gen_ai.system", "openai")
		ev.Attributes().PutStr(e.key, b.prose("genai_events", e.name+" "+e.key))
	}
	asst := events.AppendEmpty()
	asst.SetName("gen_ai.assistant.message")
	call := asst.Attributes().PutEmptySlice("tool_calls").AppendEmpty().SetEmptyMap()
	call.PutStr("id", "call_1")
	fn := call.PutEmptyMap("function")
	fn.PutStr("name", "get_weather")
	fn.PutStr("arguments", `{"city":"`+b.marker("genai_events", "assistant tool_calls arguments")+`"}`)
	choice := events.AppendEmpty()
	choice.SetName("gen_ai.choice")
	choice.Attributes().PutInt("index", 0)
	choice.Attributes().PutStr("finish_reason", "stop")
	m := choice.Attributes().PutEmptyMap("message")
	m.PutStr("role", "assistant")
	m.PutStr("content", b.prose("genai_events", "gen_ai.choice message.content"))
	odd := events.AppendEmpty()
	odd.SetName("GEN_AI.User.Message ")
	odd.Attributes().PutStr("content", b.prose("genai_events", "event named 'GEN_AI.User.Message '"))
	prompt := events.AppendEmpty()
	prompt.SetName("gen_ai.content.prompt")
	prompt.Attributes().PutStr("gen_ai.prompt", b.prose("genai_events", "gen_ai.content.prompt event (Semantic Kernel)"))

	link := chat.Links().AppendEmpty()
	link.SetTraceID(pcommon.TraceID{0xaa, 0xbb})
	link.SetSpanID(pcommon.SpanID{0xcc})
	link.Attributes().PutStr("user.id", b.marker("user_identity", "link user.id"))
	link.Attributes().PutStr("gen_ai.prompt", b.prose("genai_indexed", "link gen_ai.prompt"))
	link.TraceState().FromRaw("acme=" + b.email("link trace state"))
	chat.TraceState().FromRaw("vendor=" + b.email("span trace state") + ",ot=th:8")
}

// httpGateway is HTTP middleware in front of the router: URLs, headers, addresses.
func (b *builder) httpGateway() {
	_, spans, id := b.trace("edge-gateway", "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp")
	srv := span(spans, id, 1, 0, "POST /v1/users/"+b.email("span name path")+"/chat", ptrace.SpanKindServer)
	a := srv.Attributes()
	a.PutStr("http.request.method", "POST")
	a.PutStr("url.full", "https://svc:"+b.password("url.full user information")+"@api.example.com/v1/users/550e8400-e29b-41d4-a716-446655440000/chat?api_key="+
		b.marker("url_full", "url.full query value")+"&"+b.email("url.full valueless query parameter")+"#access_token="+b.marker("url_full", "url.full fragment"))
	a.PutStr("url.path", "/v1/users/"+b.email("url.path segment")+"/orders/"+b.add("918273645501", "path_id", "url.path numeric segment"))
	a.PutStr("url.query", "token="+b.marker("url_query", "url.query value")+"&"+b.email("url.query valueless"))
	a.PutStr("http.target", "/v1/chat?session="+b.marker("url_target", "http.target query value"))
	a.PutStr("http.url", "http://api.example.com/login?password="+b.marker("url_full", "http.url query"))
	header, _ := b.bearer("http.request.header.authorization")
	a.PutEmptySlice("http.request.header.authorization").AppendEmpty().SetStr(header)
	a.PutEmptySlice("http.request.header.cookie").AppendEmpty().SetStr("session=" + b.marker("http_headers", "cookie"))
	a.PutEmptySlice("http.response.header.set-cookie").AppendEmpty().SetStr("sid=" + b.marker("http_headers", "set-cookie"))
	a.PutEmptySlice("http.request.header.x-api-key").AppendEmpty().SetStr(b.apiKey("x-api-key header"))
	a.PutEmptySlice("http.request.header.content-type").AppendEmpty().SetStr("application/json")
	a.PutStr("client.address", b.add(fmt.Sprintf("203.0.113.%d", 10+len(b.secrets)%200), "client_address", "client.address"))
	a.PutStr("user_agent.original", "curl/8.5.0")
	a.PutStr("app.config.api_key", b.marker("credential_keys", "app.config.api_key"))
	a.PutStr("customer.phone_number", b.marker("personal_keys", "customer.phone_number"))
	a.PutStr("auth.jwt", "token "+b.jwt("auth.jwt value"))
	a.PutStr("payment.debug", "charge "+b.card("payment.debug")+" ssn "+b.ssn("payment.debug")+" iban "+b.iban("payment.debug"))
	a.PutStr("upstream.dsn", "postgres://app:"+b.password("free text URL credentials")+"@db.internal:5432/app")
	b.n++
	a.PutStr("request.body.snippet", `{"password": "`+b.add(fmt.Sprintf("leak%sPass%03d", b.tag, b.n), "secret_assignment", "JSON password")+`"}`)
	a.PutStr("http.request.body.original", `{"messages":[{"content":"`+b.marker("http_bodies", "http.request.body.original")+`"}]}`)
	a.PutInt("http.request.body.size", 2048)
	a.PutStr("code.stacktrace", "at handler(prompt="+b.marker("exception_text", "code.stacktrace")+")")
	a.PutStr("card.as.text", b.card("card key value"))
	a.PutInt("card.as.int", parseInt(strings.ReplaceAll(b.card("card as an integer"), " ", "")))
	// Keys the request summary and its metric labels read, from another service's span.
	a.PutStr("error.type", b.email("error.type on another service's span"))
	a.PutStr("category.name", "math "+b.phone("category.name on another service's span"))
	a.PutStr("gen_ai.response.model", "ft:"+b.email("gen_ai.response.model on another service's span"))
	srv.Status().SetCode(ptrace.StatusCodeError)
	srv.Status().SetMessage("upstream returned 500 for " + b.email("gateway status message"))
}

func parseInt(s string) int64 {
	var n int64
	for _, c := range s {
		n = n*10 + int64(c-'0')
	}
	return n
}

// router adds router traces of every era, with odd spellings on the root and a model server.
func (b *builder) router() {
	rng := rand.New(rand.NewPCG(7, b.rng.Uint64()))
	for i, era := range []routerconv.Era{routerconv.EraA, routerconv.EraB, routerconv.EraC, routerconv.EraD} {
		tr := routersim.Build(routersim.Request{Era: era, Outcome: []routersim.Outcome{routersim.OutcomeOK, routersim.OutcomeError,
			routersim.OutcomeJailbreak, routersim.OutcomeCacheHit}[i], Category: "math", Model: "qwen3-8b",
			Prompt: b.prose("router_prompt", fmt.Sprintf("era %s cache.key", era)), Start: start, ModelServer: true}, rng)
		b.traceIDs = append(b.traceIDs, tr.ID)
		for _, s := range tr.Spans().All() {
			if !routerconv.IsLocalRoot(s) {
				continue
			}
			a := s.Attributes()
			a.PutStr("user.id\xff", b.marker("user_identity", "router root user.id + invalid byte"))
			a.PutStr("User.Email ", b.email("router root 'User.Email ' (trailing space)"))
			a.PutStr("INPUT.VALUE", b.prose("openinference_io", "router root INPUT.VALUE"))
			a.PutStr("Gen_AI.Prompt.0.Content", b.prose("genai_indexed", "router root Gen_AI.Prompt.0.Content"))
			a.PutStr("session.id\u200b", b.marker("session_identity", "router root session.id + zero-width space"))
			a.PutStr(b.email("router root key that is an address"), "1")
			a.PutStr("routing.reason", "matched for "+b.email("router routing.reason"))
			ev := s.Events().AppendEmpty()
			ev.SetName("exception")
			ev.Attributes().PutStr("exception.type", "*errors.errorString")
			ev.Attributes().PutStr("exception.message", "classifier failed on: "+b.prose("exception_text", "router exception.message"))
		}
		if ms, ok := tr.ModelServerSpans(); ok {
			for _, s := range ms.All() {
				s.Attributes().PutStr("gen_ai.prompt", b.prose("genai_indexed", "model server gen_ai.prompt"))
				s.Attributes().PutStr("gen_ai.completion.0.content", b.prose("genai_indexed", "model server completion"))
			}
		}
		tr.Traces.ResourceSpans().MoveAndAppendTo(b.td.ResourceSpans())
	}
}

// duplicates is OTLP JSON that repeats keys, as OTLP allows: every copy must be handled, and
// one kept.
func (b *builder) duplicates() {
	id := pcommon.TraceID{0xd0, byte(len(b.tag)), byte(b.n)}
	for i := 3; i < 16; i++ {
		id[i] = byte(b.rng.Uint32())
	}
	b.traceIDs = append(b.traceIDs, id)
	kv := func(k, v string) string { return fmt.Sprintf(`{"key":%q,"value":{"stringValue":%q}}`, k, v) }
	kvs := func(pairs ...string) string {
		var out []string
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, kv(pairs[i], pairs[i+1]))
		}
		return strings.Join(out, ",")
	}
	tid := fmt.Sprintf("%x", id[:])
	js := fmt.Sprintf(`{"resourceSpans":[{"resource":{"attributes":[%s]},"scopeSpans":[{"scope":{"name":"%s"},"spans":[
{"traceId":%q,"spanId":"d000000000000001","name":"semantic_router.request.received","startTimeUnixNano":"1793613600000000000","endTimeUnixNano":"1793613601000000000",
 "attributes":[%s,{"key":"request","value":{"kvlistValue":{"values":[%s]}}}],
 "events":[{"name":"exception","timeUnixNano":"1793613600500000000","attributes":[%s]}]},
{"traceId":%q,"spanId":"d000000000000002","parentSpanId":"d000000000000001","name":"langchain.chat","startTimeUnixNano":"1793613600100000000","endTimeUnixNano":"1793613600900000000",
 "attributes":[%s]}]}]}]}`,
		kvs("service.name", "vllm-sr", "session.id", b.marker("session_identity", "resource session.id (first copy)"),
			"session.id", b.marker("session_identity", "resource session.id (second copy)")),
		routerconv.TracerName, tid,
		kvs("user.id", b.marker("user_identity", "router user.id (first copy)"), "user.id", b.marker("user_identity", "router user.id (second copy)"),
			"cache.key", b.prose("router_prompt", "router cache.key (first copy)"), "cache.key", b.prose("router_prompt", "router cache.key (second copy)"),
			"input.value", b.prose("openinference_io", "router input.value (first copy)"), "input.value", b.prose("openinference_io", "router input.value (second copy)")),
		kvs("user.id", b.marker("user_identity", "nested map user.id (first copy)"), "user.id", b.marker("user_identity", "nested map user.id (second copy)")),
		kvs("exception.message", b.prose("exception_text", "event exception.message (first copy)"), "exception.message", b.prose("exception_text", "event exception.message (second copy)")),
		tid,
		kvs("input.value", b.prose("openinference_io", "foreign input.value (first copy)"), "input.value", b.prose("openinference_io", "foreign input.value (second copy)"),
			"note", "ok", "note", "second note mails "+b.email("second copy of a plain key")),
	)
	td, err := (&ptrace.JSONUnmarshaler{}).UnmarshalTraces([]byte(js))
	if err != nil {
		panic(fmt.Sprintf("leakcorpus: duplicate-key JSON: %v", err))
	}
	td.ResourceSpans().MoveAndAppendTo(b.td.ResourceSpans())
}
