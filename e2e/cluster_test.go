//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-vsr/otelcol-vsr/distro/shipped"
)

// cluster stands in, on loopback, for what Kubernetes gives the two tiers: the gateways'
// StatefulSet pods, each with a pod IP that is new every time the pod is replaced, and a stable
// DNS name (<pod>.<headless Service>) that resolves to that IP while the pod is ready; and the
// EndpointSlice the EndpointSlice controller keeps for the headless Service.
//
// The agents reach the gateways through an HTTP CONNECT proxy, set as their HTTPS_PROXY. gRPC
// honours it for every address that is not loopback and hands the proxy the name unresolved
// (grpc-go's delegating resolver), so the proxy plays the cluster's DNS and pod network: it
// connects a pod's DNS name or current IP to the process that plays the pod, or refuses as a
// cluster would (no DNS record, nothing listening). The agents run their shipped config
// unchanged, their resolver included; only name resolution and routing are the cluster's. No
// other way runs here: the collector resolves names with Go's resolver, which reads the
// machine's /etc/hosts and /etc/resolv.conf, and a test may not change those.
//
// For the k8s resolver (the alternative TestGatewayRollWithK8sResolver measures), the cluster
// also serves the EndpointSlice from a fake API server, as kube-apiserver does (list, watch,
// watch-list with its initial-events bookmark), reached through a kubeconfig: the resolver
// builds its client with controller-runtime's config.GetConfig, which reads KUBECONFIG before
// the in-cluster config.
type cluster struct {
	mu      sync.Mutex
	pods    []*gatewayPod // by ordinal
	nextIP  int
	tunnels map[string]int // connections made, by the pod IP they reached
	proxy   net.Listener
	api     *apiServer
}

// gatewayPod is one StatefulSet pod and the process that plays it.
type gatewayPod struct {
	name        string // otelcol-vsr-gateway-<ordinal>
	ip          string // this incarnation's pod IP; "" while the pod does not exist
	c           *collector
	ready       bool
	terminating bool
}

const (
	gatewayService = "otelcol-vsr-gateway"
	gatewayPort    = 4317
)

func newCluster(t *testing.T) *cluster {
	cl := &cluster{nextIP: 10, tunnels: map[string]int{}}
	var err error
	cl.proxy, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	require.NoError(t, err)
	t.Cleanup(func() { cl.proxy.Close() })
	go cl.serveProxy()
	cl.api = startAPIServer(t, cl)
	return cl
}

// agentEnv is what an agent's pod gets from the cluster: the network to the gateways, and (for
// the k8s resolver) the API server.
func (cl *cluster) agentEnv() []string {
	return []string{
		"HTTPS_PROXY=http://" + cl.proxy.Addr().String(), "https_proxy=", "NO_PROXY=", "no_proxy=",
		"KUBECONFIG=" + cl.api.kubeconfig,
	}
}

// startGateway creates the StatefulSet pod of an ordinal and starts its process from a layout's
// gateway config.
func (cl *cluster) startGateway(t *testing.T, layout string, mounts map[string]string, env ...string) *collector {
	cl.mu.Lock()
	p := &gatewayPod{name: fmt.Sprintf("%s-%d", gatewayService, len(cl.pods))}
	cl.pods = append(cl.pods, p)
	cl.mu.Unlock()
	c := newShipped(t, layout, "StatefulSet", mounts, env...)
	cl.schedule(p)
	c.start(t, p.name)
	cl.setReady(p, c)
	return c
}

// schedule gives the pod its IP: the EndpointSlice controller lists it, not ready yet.
func (cl *cluster) schedule(p *gatewayPod) {
	cl.mu.Lock()
	p.ip = fmt.Sprintf("10.244.0.%d", cl.nextIP)
	cl.nextIP++
	p.ready, p.terminating = false, false
	cl.mu.Unlock()
	cl.api.publish()
}

func (cl *cluster) setReady(p *gatewayPod, c *collector) {
	cl.mu.Lock()
	p.c, p.ready = c, true
	cl.mu.Unlock()
	cl.api.publish()
}

// replace is what the StatefulSet controller and the kubelet do to a gateway pod in a rolling
// update or a drain: the pod turns terminating (not ready, so its DNS record goes; still in
// the EndpointSlice), its process gets SIGTERM and finishes its shutdown, the pod object is
// deleted (it leaves the EndpointSlice), and after `away` (scheduling, volume attach, sandbox)
// its replacement gets a new IP, is listed not ready, starts on the same claim, and turns
// ready. It returns the old process's decisions and the replacement's IP.
func (cl *cluster) replace(t *testing.T, ordinal int, away time.Duration) (decided float64, newIP string) {
	cl.mu.Lock()
	p := cl.pods[ordinal]
	c := p.c
	p.ready, p.terminating = false, true
	cl.mu.Unlock()
	cl.api.publish()
	c.stop(t, time.Minute)
	decided = shutdownDecisions(t, c)
	cl.mu.Lock()
	p.ip, p.c, p.terminating = "", nil, false
	cl.mu.Unlock()
	cl.api.publish()
	time.Sleep(away)
	cl.schedule(p)
	c.moveAndRestart(t, p.name)
	cl.setReady(p, c)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return decided, p.ip
}

// remove scales the StatefulSet down by its last ordinal: the pod terminates for good (its
// claim stays).
func (cl *cluster) remove(t *testing.T) (decided float64) {
	cl.mu.Lock()
	p := cl.pods[len(cl.pods)-1]
	c := p.c
	p.ready, p.terminating = false, true
	cl.mu.Unlock()
	cl.api.publish()
	c.stop(t, time.Minute)
	cl.mu.Lock()
	cl.pods = cl.pods[:len(cl.pods)-1]
	cl.mu.Unlock()
	cl.api.publish()
	return shutdownDecisions(t, c)
}

// route is the cluster's answer for a CONNECT target: the loopback address of the process
// playing the pod it names, by DNS name while the pod is ready, or by its current IP while the
// pod exists.
func (cl *cluster) route(target string) (string, error) {
	host, port, err := net.SplitHostPort(target)
	if err != nil {
		return "", err
	}
	if port != strconv.Itoa(gatewayPort) {
		return "", fmt.Errorf("%s: no gateway listens on port %s", target, port)
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, p := range cl.pods {
		byIP := host == p.ip && p.ip != ""
		if !byIP && !(p.ready && isPodName(host, p.name)) {
			continue
		}
		if p.c == nil {
			return "", fmt.Errorf("%s: connection refused", target)
		}
		cl.tunnels[p.ip]++
		return p.c.endpoint(), nil
	}
	return "", fmt.Errorf("%s: no such host", target)
}

// connections is how many connections the agents made to a pod IP.
func (cl *cluster) connections(ip string) int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.tunnels[ip]
}

// ip is the current pod IP of an ordinal.
func (cl *cluster) ip(ordinal int) string {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.pods[ordinal].ip
}

// isPodName reports whether host is one of the names the cluster's DNS gives a StatefulSet pod
// under the headless Service: relative (found by the pod's search path) or fully qualified.
func isPodName(host, pod string) bool {
	host = strings.TrimSuffix(host, ".")
	base := pod + "." + gatewayService
	for _, suffix := range []string{"", "." + shipped.Namespace, "." + shipped.Namespace + ".svc", "." + shipped.Namespace + ".svc.cluster.local"} {
		if host == base+suffix {
			return true
		}
	}
	return false
}

func (cl *cluster) serveProxy() {
	for {
		conn, err := cl.proxy.Accept()
		if err != nil {
			return
		}
		go cl.tunnel(conn)
	}
}

// tunnel answers one CONNECT: 200 and a byte stream to the pod, or 502 as a dial that fails.
func (cl *cluster) tunnel(conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	if req.Method != http.MethodConnect {
		fmt.Fprint(conn, "HTTP/1.1 405 Method Not Allowed\r\n\r\n")
		return
	}
	addr, err := cl.route(req.Host)
	var backend net.Conn
	if err == nil {
		backend, err = net.DialTimeout("tcp", addr, 5*time.Second)
	}
	if err != nil {
		fmt.Fprintf(conn, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: %d\r\n\r\n%s", len(err.Error()), err.Error())
		return
	}
	defer backend.Close()
	_ = conn.SetDeadline(time.Time{})
	if _, err := fmt.Fprint(conn, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(backend, br); backend.Close(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, backend); conn.Close(); done <- struct{}{} }()
	<-done
	<-done
}

// apiServer is as much of kube-apiserver as the k8s resolver uses: the EndpointSlices of one
// namespace by label selector, listed, watched from a resourceVersion, or watch-listed (initial
// events, then a bookmark marking their end), as JSON.
type apiServer struct {
	cl         *cluster
	srv        *http.Server
	kubeconfig string

	mu      sync.Mutex
	version int
	history []watchEvent // every version of the slice, in order
	changed chan struct{}
}

type watchEvent struct {
	Type   string          `json:"type"`
	Object json.RawMessage `json:"object"`
}

func startAPIServer(t *testing.T, cl *cluster) *apiServer {
	a := &apiServer{cl: cl, changed: make(chan struct{})}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", freePort(t)))
	require.NoError(t, err)
	a.srv = &http.Server{Handler: http.HandlerFunc(a.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = a.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.srv.Shutdown(ctx)
		a.srv.Close()
	})
	a.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(a.kubeconfig, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: http://%s
contexts:
  - name: e2e
    context:
      cluster: e2e
      namespace: %s
current-context: e2e
`, l.Addr(), shipped.Namespace), 0o600))
	a.publish()
	return a
}

// publish records the slice as the EndpointSlice controller would write it now.
func (a *apiServer) publish() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.version++
	typ := "MODIFIED"
	if a.version == 1 {
		typ = "ADDED"
	}
	a.history = append(a.history, watchEvent{Type: typ, Object: a.sliceJSON(a.version)})
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *apiServer) sliceJSON(version int) json.RawMessage {
	a.cl.mu.Lock()
	defer a.cl.mu.Unlock()
	slice := discoveryv1.EndpointSlice{
		TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
		ObjectMeta: metav1.ObjectMeta{
			Name: gatewayService + "-x7k2p", Namespace: shipped.Namespace, ResourceVersion: strconv.Itoa(version),
			Labels: map[string]string{discoveryv1.LabelServiceName: gatewayService, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr("otlp-grpc"), Port: ptr(int32(gatewayPort)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	for _, p := range a.cl.pods {
		if p.ip == "" {
			continue
		}
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{p.ip},
			Hostname:  ptr(p.name),
			Conditions: discoveryv1.EndpointConditions{
				Ready: ptr(p.ready), Serving: ptr(p.ready || p.terminating && p.c != nil), Terminating: ptr(p.terminating),
			},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: shipped.Namespace, Name: p.name},
		})
	}
	raw, err := json.Marshal(slice)
	if err != nil {
		panic(err)
	}
	return raw
}

func ptr[T any](v T) *T { return &v }

func (a *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/apis/discovery.k8s.io/v1/namespaces/"+shipped.Namespace+"/endpointslices" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	selected := q.Get("labelSelector") == discoveryv1.LabelServiceName+"="+gatewayService
	if q.Get("watch") == "true" || q.Get("watch") == "1" {
		a.watch(w, r, selected)
		return
	}
	a.mu.Lock()
	items := []json.RawMessage{}
	if selected {
		items = append(items, a.history[len(a.history)-1].Object)
	}
	list := map[string]any{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSliceList",
		"metadata": map[string]any{"resourceVersion": strconv.Itoa(a.version)}, "items": items}
	a.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(list)
}

func (a *apiServer) watch(w http.ResponseWriter, r *http.Request, selected bool) {
	q := r.URL.Query()
	timeout := 5 * time.Minute
	if s, err := strconv.Atoi(q.Get("timeoutSeconds")); err == nil && s > 0 {
		timeout = time.Duration(s) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	flush := func() { w.(http.Flusher).Flush() }
	a.mu.Lock()
	from, err := strconv.Atoi(q.Get("resourceVersion"))
	if err != nil {
		from = 0
	}
	if q.Get("sendInitialEvents") == "true" {
		// Watch-list: the current state as ADDED, then a bookmark that ends the initial events.
		if selected {
			_ = enc.Encode(watchEvent{Type: "ADDED", Object: a.history[len(a.history)-1].Object})
		}
		bookmark, _ := json.Marshal(map[string]any{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
			"metadata": map[string]any{"resourceVersion": strconv.Itoa(a.version), "annotations": map[string]string{metav1.InitialEventsAnnotationKey: "true"}}})
		_ = enc.Encode(watchEvent{Type: "BOOKMARK", Object: bookmark})
		from = a.version
	}
	a.mu.Unlock()
	flush()
	for {
		a.mu.Lock()
		var pending []watchEvent
		if selected && from < a.version {
			pending = a.history[from:]
			from = a.version
		}
		changed := a.changed
		a.mu.Unlock()
		for _, e := range pending {
			if err := enc.Encode(e); err != nil {
				return
			}
		}
		flush()
		select {
		case <-changed:
		case <-ctx.Done():
			return // the client went, or its timeoutSeconds passed: it watches again from its version
		}
	}
}
