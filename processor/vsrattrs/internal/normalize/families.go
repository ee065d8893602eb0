package normalize

// Class is what a family's values are; it sets the action the family takes by default.
type Class uint8

const (
	// ClassContent is text people wrote or a model read or wrote: prompts, completions,
	// messages, documents, templates, tool arguments and results, free text quoting them.
	// Default action: redaction.prompts.
	ClassContent Class = iota
	// ClassIdentifier says who the user is: user, session and conversation IDs, names,
	// addresses. Default action: redaction.identifiers.
	ClassIdentifier
	// ClassCredential lets someone in: credential headers, command lines, environment
	// variables, keys. Default action: redaction.credentials.
	ClassCredential
	// ClassURL is a URL or part of one. Default action: sanitize (user information, IDs in the
	// path, query values out, as url_query says; the rest stays).
	ClassURL
	NumClasses
)

var classNames = [NumClasses]string{"content", "identifier", "credential", "url"}

func (c Class) String() string { return classNames[c] }

// URLPart is which part of a URL a ClassURL family's values are.
type URLPart uint8

const (
	// URLFull is an absolute URL: scheme, user information, host, path, query, fragment.
	URLFull URLPart = iota
	// URLTarget is a path with its query and fragment, if any.
	URLTarget
	// URLQuery is a query string (or a fragment).
	URLQuery
)

// Family is a set of keys (and of span events) whose values are one kind of private data, as
// the emitters that write them define them.
type Family struct {
	// ID names the family in redaction.families and in the telemetry's family attribute.
	ID string
	// Source is who writes these keys.
	Source string
	Class  Class
	// Keys match a key (any letter case) and every key under it: `llm.input_messages` matches
	// `llm.input_messages.0.message.content`, and the same data as nested maps and arrays
	// (`llm` = {input_messages: [...]}). A key of two or more parts also matches inside a
	// longer key (`user.id` in `request.user.id`, `langfuse.user.id`); a one-part key only
	// at the start (`metadata`, not `llm.token_count.prompt` for `prompt`).
	Keys []string
	// Events are span event names whose attributes are the event's body: all content, but
	// for the structure keys.
	Events []string
	// Words match any key made of these words in this order (split on `.`, `_`, `-` and
	// camelCase; `$` ends the key): `api key` matches `x-api-key`, `openaiApiKey`.
	Words []string
	// Except are keys under Keys that are structure, not data: kept (and scanned). Numbered
	// parts are left out when matching: `role` covers `gen_ai.prompt.3.role`.
	Except []string
	// URL is which part of a URL a ClassURL family's values are.
	URL URLPart
	// RouterOnly families apply on the router's spans only.
	RouterOnly bool
	Doc        string
}

// ContentStructure are the keys under a content family (and in a content event's body) that
// describe the data rather than hold it: kept, and scanned like any kept value. A key ending
// in one of these (on a part boundary) is structure.
var ContentStructure = []string{
	"role", "finish_reason", "index", "id", "tool_call_id", "type", "mime_type", "score",
	"function.name", "function_call_name", "tool_calls.name", "gen_ai.system", "gen_ai.provider.name", "event.name",
}

// Families is every family of private data vsr_attributes redacts, in every service's spans,
// events, links, scopes and resources. The README's privacy table is rendered from it.
var Families = [...]Family{
	// Content: what people and models wrote.
	{ID: "genai_messages", Source: "OTel GenAI", Class: ClassContent,
		Keys: []string{"gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
			"gen_ai.tool.call.arguments", "gen_ai.tool.call.result", "gen_ai.retrieval.query.text",
			"gen_ai.retrieval.documents", "gen_ai.memory.query.text", "gen_ai.memory.records", "gen_ai.evaluation.explanation"},
		Doc: "Chat history, system instructions, tool call arguments and results, retrieval queries and documents, memory."},
	{ID: "genai_events", Source: "OTel GenAI events, OpenLIT, Semantic Kernel", Class: ClassContent,
		Events: []string{"gen_ai.system.message", "gen_ai.user.message", "gen_ai.assistant.message", "gen_ai.tool.message",
			"gen_ai.choice", "gen_ai.content.prompt", "gen_ai.content.completion"},
		Doc: "The body of message and choice events (`content`, `message`, `tool_calls`…)."},
	{ID: "genai_indexed", Source: "OpenLLMetry, OTel GenAI (deprecated)", Class: ClassContent,
		Keys:   []string{"gen_ai.prompt", "gen_ai.completion", "llm.content.completion.chunk"},
		Except: []string{"name"},
		Doc:    "Numbered prompt and completion messages (`gen_ai.prompt.0.content`, `gen_ai.completion.0.tool_calls.0.arguments`); `gen_ai.prompt.name` stays."},
	{ID: "openinference_io", Source: "OpenInference", Class: ClassContent,
		Keys: []string{"input.value", "output.value"},
		Doc:  "A span's input and output (prompts, chains, tool calls)."},
	{ID: "openinference_messages", Source: "OpenInference", Class: ClassContent,
		Keys: []string{"llm.input_messages", "llm.output_messages", "llm.prompts", "llm.choices",
			"llm.prompt_template.template", "llm.prompt_template.variables", "llm.function_call"},
		Doc: "Messages (`llm.input_messages.0.message.content`, `…message.contents.0.message_content.text`, tool call arguments), completions-API prompts and choices, templates and their variables."},
	{ID: "openinference_retrieval", Source: "OpenInference", Class: ClassContent,
		Keys: []string{"retrieval.documents", "embedding.embeddings", "reranker.input_documents", "reranker.output_documents", "reranker.query"},
		Doc:  "Retrieved and reranked documents (content, metadata), embedded texts and vectors, reranker queries; document IDs and scores stay."},
	{ID: "openinference_tools", Source: "OpenInference", Class: ClassContent,
		Keys: []string{"tool.parameters", "metadata"},
		Doc:  "Tool parameters; `metadata` (user-defined, often the request's)."},
	{ID: "openllmetry_entities", Source: "OpenLLMetry", Class: ClassContent,
		Keys: []string{"traceloop.entity.input", "traceloop.entity.output", "traceloop.prompt.template",
			"traceloop.prompt.template_variables", "mcp.request.argument", "mcp.response.value",
			"db.query.result.document", "db.query.result.metadata", "db.search.result.entity"},
		Doc: "Workflow and task inputs and outputs, prompt templates, MCP arguments and results, vector store documents."},
	{ID: "langfuse_io", Source: "Langfuse", Class: ClassContent,
		Keys: []string{"langfuse.trace.input", "langfuse.trace.output", "langfuse.observation.input", "langfuse.observation.output",
			"langfuse.trace.metadata", "langfuse.observation.metadata", "langfuse.metadata"},
		Doc: "Trace and observation input, output and metadata."},
	{ID: "framework_io", Source: "Vercel AI SDK, Pydantic AI/Logfire, MLflow, Google ADK (as Langfuse reads them)", Class: ClassContent,
		Keys: []string{"ai.prompt", "ai.response.text", "ai.response.object", "ai.response.toolcalls", "ai.result.text",
			"ai.result.object", "ai.result.toolcalls", "ai.toolcall.args", "ai.toolcall.result",
			"input", "output", "prompt", "all_messages_events", "mlflow.spaninputs", "mlflow.spanoutputs",
			"gcp.vertex.agent.llm_request", "gcp.vertex.agent.llm_response"},
		Except: []string{"tools", "toolchoice", "vendor", "url"},
		Doc:    "Prompts, responses and tool calls under these frameworks' keys; `ai.prompt.tools`, `prompt.vendor`, `prompt.id`, `prompt.url` stay."},
	{ID: "exception_text", Source: "OTel exceptions, code", Class: ClassContent,
		Keys: []string{"exception.message", "exception.stacktrace", "code.stacktrace", "error.message"},
		Doc:  "Exception and error messages and stack traces, which quote their input (a prompt, a document); `exception.type` and `error.type` stay."},
	{ID: "http_bodies", Source: "HTTP instrumentations (Elastic, hooks)", Class: ClassContent,
		Keys: []string{"http.request.body", "http.response.body"}, Except: []string{"size"},
		Doc: "Request and response bodies recorded as attributes (`http.request.body.original`); their sizes stay."},
	{ID: "router_prompt", Source: "vLLM Semantic Router", Class: ClassContent, RouterOnly: true,
		Keys: []string{"cache.key"},
		Doc:  "The semantic cache's key, the raw prompt (router spans only: other services name their own caches so)."},

	// Identifiers: who the user is.
	{ID: "user_identity", Source: "OTel user, enduser; OpenInference; Langfuse", Class: ClassIdentifier,
		Keys: []string{"user.id", "user.email", "user.name", "user.full_name", "user.hash", "enduser.id", "enduser.pseudo.id", "llm.user"},
		Doc:  "User IDs, e-mail addresses and names, wherever they are nested (`request.user.id`, `langfuse.user.id`); `llm.user` (OpenLLMetry)."},
	{ID: "session_identity", Source: "OTel session, GenAI; OpenInference; Langfuse", Class: ClassIdentifier,
		Keys: []string{"session.id", "session.previous_id", "gen_ai.conversation.id"},
		Doc:  "Session and conversation IDs (`langfuse.session.id` too)."},
	{ID: "framework_identity", Source: "OpenLLMetry, Vercel AI SDK", Class: ClassIdentifier,
		Keys: []string{"traceloop.association.properties", "ai.telemetry.metadata.userid", "ai.telemetry.metadata.sessionid"},
		Doc:  "Association properties (`user_id`, `session_id`, `chat_id`…) and the AI SDK's user and session."},
	{ID: "client_address", Source: "OTel HTTP, network", Class: ClassIdentifier,
		Keys: []string{"client.address", "http.client_ip", "net.peer.ip", "net.sock.peer.addr", "network.peer.address"},
		Doc:  "The peer's address, on a server span the user's IP."},
	{ID: "personal_keys", Source: "any", Class: ClassIdentifier,
		Words: []string{"email", "e mail", "phone", "phone number", "mobile", "full name", "fullname", "first name", "last name",
			"surname", "username", "user name", "date of birth", "birthdate", "ssn", "social security", "national id",
			"passport", "credit card", "card number", "iban"},
		Doc: "Any key named for personal data (`customer.email`, `billing.card_number`)."},

	// Credentials.
	{ID: "http_headers", Source: "OTel HTTP, OpenLLMetry", Class: ClassCredential,
		Keys: []string{"http.request.header", "http.response.header", "llm.headers"},
		Except: []string{"accept", "accept-encoding", "accept-language", "cache-control", "connection", "content-encoding",
			"content-length", "content-type", "date", "host", "server", "traceparent", "tracestate", "transfer-encoding",
			"user-agent", "vary", "x-request-id", "x-correlation-id"},
		Doc: "Request and response headers (`authorization`, `cookie`, `set-cookie`, `x-api-key`, `x-forwarded-for`…) but a few that carry no credential or address."},
	{ID: "process_command", Source: "OTel process", Class: ClassCredential,
		Keys: []string{"process.command_line", "process.command_args", "process.environment_variable"},
		Doc:  "Command lines and arguments (`--api-key=…`) and environment variables, on resources."},
	{ID: "db_connection", Source: "OTel database (deprecated)", Class: ClassCredential,
		Keys: []string{"db.connection_string"},
		Doc:  "Connection strings, with their passwords."},
	{ID: "credential_keys", Source: "any", Class: ClassCredential,
		Words: []string{"password", "passwd", "passphrase", "secret", "secrets", "authorization", "cookie", "cookies",
			"credential", "credentials", "apikey", "api key", "private key", "secret key", "access key", "access token",
			"refresh token", "id token", "auth token", "session token", "bearer", "signature", "token $"},
		Doc: "Any key named for a credential (`app.api_key`, `grpc.metadata.authorization`, `github.token`)."},

	// URLs.
	{ID: "url_full", Source: "OTel URL, HTTP (deprecated)", Class: ClassURL, URL: URLFull,
		Keys: []string{"url.full", "http.url", "url.original"},
		Doc:  "Absolute URLs: user information, IDs in the path, query and fragment values."},
	{ID: "url_target", Source: "OTel URL, HTTP (deprecated), the router", Class: ClassURL, URL: URLTarget,
		Keys: []string{"url.path", "http.target", "http.path"},
		Doc:  "Paths and request targets: IDs and findings in path segments, query and fragment values."},
	{ID: "url_query", Source: "OTel URL", Class: ClassURL, URL: URLQuery,
		Keys: []string{"url.query", "url.fragment"},
		Doc:  "Query strings and fragments."},

	// Keys that are themselves suspect, and the operator's own.
	{ID: "invalid_keys", Source: "any", Class: ClassContent,
		Doc: "A key that is not clean printable ASCII (invalid UTF-8, control or invisible characters, spaces, over 256 bytes) or that holds a finding (an address), and a value nested over 16 levels deep: the value is content, the key rewritten clean."},
	{ID: "blocked_key_patterns", Source: "operator", Class: ClassContent,
		Doc: "Keys matching `redaction.blocked_key_patterns`."},
}

// Indexes of the families the walk refers to by itself.
var (
	familyInvalidKeys        = familyIndex("invalid_keys")
	familyBlockedKeyPatterns = familyIndex("blocked_key_patterns")
)

func familyIndex(id string) int {
	for i, f := range Families {
		if f.ID == id {
			return i
		}
	}
	panic("no family " + id)
}

// NumFamilies is the number of families, for counters indexed by family.
const NumFamilies = len(Families)
