package routerconv

import "time"

// ExportInterval is how long the router holds a span before it exports it, at most: the Go
// SDK's batch span processor exports every 5 s, or sooner at 512 spans. A span reaches the
// collector up to this long after it ended.
const ExportInterval = 5 * time.Second
