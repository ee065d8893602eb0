package routerconv

import "time"

// ExportInterval is how long the router holds a span before it exports it, at most: the Go
// SDK's batch span processor exports every 5 s, or sooner at 512 spans. A span reaches the
// collector up to this long after it ended.
const ExportInterval = 5 * time.Second

// ExportTimeout is how long one export of the router's batch span processor may take (the Go
// SDK's default); spans queued meanwhile wait for it.
const ExportTimeout = 30 * time.Second

// RouteTimeout is the longest a model call of an era A–C router lasts. The router ends its
// upstream span when the model's response headers reach it (extproc's response-header
// handler), and Envoy's route timeout bounds the wait for the whole response: at the timeout
// Envoy answers 504 itself. The router's own configurations set that timeout to 300 s (the
// Envoy configs of v0.1.0 to v0.3.0: config/envoy.yaml, deploy/local, Kubernetes, OpenShift,
// KServe) or 1200 s (the vllm-sr CLI's template since v0.2.0, listener.timeout); this is the
// longer. A streamed answer's span ends at its first bytes, sooner.
const RouteTimeout = 1200 * time.Second

// ModelCallWait is how long after a request's last span its model call can still arrive: the
// call starts when the router is done with the request (the decision and its plugins, whose
// spans end then), lasts at most RouteTimeout, and its span reaches the collector within an
// export interval and an export's timeout after it ends. Past it, no model call can still
// come.
const ModelCallWait = RouteTimeout + ExportInterval + ExportTimeout
