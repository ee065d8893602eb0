package shipped

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// StateRoot is where the shipped configs keep their queue, decisions and spill.
const StateRoot = "/var/lib/otelcol-vsr"

// podAddress is how a shipped config names the pod's own address in a listener.
var podAddress = regexp.MustCompile(`^(\$\{env:MY_POD_IP\}|0\.0\.0\.0):(\d+)$`)

// Loopback is where a shipped config runs on one machine, as the end-to-end tests run it.
type Loopback struct {
	// Ports maps each port the config listens on to the one it gets here.
	Ports map[int]int
	// StateDir stands in for StateRoot.
	StateDir string
	// Mounts maps other directories the pod mounts (a Secret's, say) to local ones.
	Mounts map[string]string
}

// Rewrite returns config with its listeners on 127.0.0.1 at the mapped ports and its state and
// mounted files under local directories; nothing else changes, the addresses it sends to
// included (the end-to-end tests give the collector a cluster's names through a proxy). A
// listener whose port has no mapping is an error, so that no shipped listener is left out
// unnoticed.
func (l Loopback) Rewrite(config []byte) ([]byte, error) {
	var cfg map[string]any
	if err := yaml.Unmarshal(config, &cfg); err != nil {
		return nil, err
	}
	rewritten, err := l.walk(cfg)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(rewritten)
}

func (l Loopback) walk(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if err := l.rewriteHostPort(x); err != nil {
			return nil, err
		}
		var errs []error
		for k, child := range x {
			var err error
			x[k], err = l.walk(child)
			errs = append(errs, err)
		}
		return x, errors.Join(errs...)
	case []any:
		var errs []error
		for i, child := range x {
			var err error
			x[i], err = l.walk(child)
			errs = append(errs, err)
		}
		return x, errors.Join(errs...)
	case string:
		return l.rewriteString(x)
	}
	return v, nil
}

func (l Loopback) rewriteString(s string) (string, error) {
	if m := podAddress.FindStringSubmatch(s); m != nil {
		port, err := l.port(m[2])
		return "127.0.0.1:" + port, err
	}
	if rest, ok := strings.CutPrefix(s, StateRoot+"/"); ok {
		return l.StateDir + "/" + rest, nil
	}
	for mount, local := range l.Mounts {
		if rest, ok := strings.CutPrefix(s, mount+"/"); ok {
			return local + "/" + rest, nil
		}
	}
	return s, nil
}

// rewriteHostPort moves a listener given as host and port keys (the telemetry's Prometheus
// reader).
func (l Loopback) rewriteHostPort(m map[string]any) error {
	host, ok := m["host"].(string)
	if !ok || (host != "${env:MY_POD_IP}" && host != "0.0.0.0") {
		return nil
	}
	port, err := l.port(fmt.Sprint(m["port"]))
	if err != nil {
		return err
	}
	m["host"] = "127.0.0.1"
	m["port"], err = strconv.Atoi(port)
	return err
}

func (l Loopback) port(shipped string) (string, error) {
	p, err := strconv.Atoi(shipped)
	if err != nil {
		return "", fmt.Errorf("listener port %q: %w", shipped, err)
	}
	local, ok := l.Ports[p]
	if !ok {
		return "", fmt.Errorf("listener port %d has no local port", p)
	}
	return strconv.Itoa(local), nil
}
