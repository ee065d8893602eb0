package distro

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"

	"github.com/otelcol-vsr/otelcol-vsr/distro/shipped"
)

// checkHashKeyRequired: defect, the hash-key Secret was optional, so a missing Secret silently
// turned hashing of prompts and user IDs into their removal. A collector that hashes now fails
// to start without it (CreateContainerConfigError, and the collector-down alerts); an empty
// hash-key in the Secret chooses removal on purpose.
func checkHashKeyRequired(t *testing.T, c corev1.Container) {
	for _, e := range c.Env {
		if e.Name != "VSR_HASH_KEY" {
			continue
		}
		require.NotNil(t, e.ValueFrom, "VSR_HASH_KEY comes from the Secret")
		ref := e.ValueFrom.SecretKeyRef
		require.NotNil(t, ref)
		assert.True(t, ref.Optional == nil || !*ref.Optional, "the hash-key Secret is required")
	}
}

// podSecurityLevels is the most restrictive Pod Security Standard each collector pod passes, and
// why, as the README states it: the node collectors need privileged (their queue outlives the
// pod on a hostPath that a root init container with only CAP_CHOWN hands to uid 10001, and
// routers reach them on hostPorts; baseline refuses both); the gateways pass restricted.
var podSecurityLevels = map[string]psaapi.Level{
	"otelcol-vsr":         psaapi.LevelPrivileged,
	"otelcol-vsr-agent":   psaapi.LevelPrivileged,
	"otelcol-vsr-gateway": psaapi.LevelRestricted,
}

// Gap: Pod Security admission refuses the node collectors at the baseline level, and the README
// created their namespace without the label that admits them. Each pod is evaluated with the
// admission controller's own checks.
func TestPodSecurityLevels(t *testing.T) {
	evaluator, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	for _, l := range layouts(t) {
		for _, w := range workloads(t, l) {
			t.Run(l.name+"/"+w.Name, func(t *testing.T) {
				passes := func(level psaapi.Level) (bool, string) {
					agg := psapolicy.AggregateCheckResults(evaluator.EvaluatePod(
						psaapi.LevelVersion{Level: level, Version: psaapi.LatestVersion()}, &metav1.ObjectMeta{Labels: w.Labels}, &w.Pod))
					return agg.Allowed, agg.ForbiddenDetail()
				}
				name := w.Labels["app.kubernetes.io/name"]
				want, ok := podSecurityLevels[name]
				require.True(t, ok, "a Pod Security level is stated for %s", name)
				allowed, why := passes(want)
				assert.True(t, allowed, "%s passes %s: %s", w.Name, want, why)
				if want != psaapi.LevelRestricted {
					stricter := psaapi.LevelRestricted
					if want == psaapi.LevelPrivileged {
						stricter = psaapi.LevelBaseline
					}
					allowed, why = passes(stricter)
					assert.False(t, allowed, "%s would pass %s: the README overstates what it needs", w.Name, stricter)
					t.Logf("%s at %s: %s", w.Name, stricter, why)
				}
				label := fmt.Sprintf("pod-security.kubernetes.io/enforce=%s", want)
				assert.True(t, strings.Contains(string(readme), label), "the README gives the namespace label %s", label)
			})
		}
	}
}

// destination is a pod a collector connects to: its namespace and labels (empty: any pod).
type destination struct {
	namespace string
	labels    map[string]string
	port      int32
	protocol  corev1.Protocol
}

// egressAllows reports whether an egress rule of a policy in namespace ns lets traffic reach d.
func egressAllows(rule networkingv1.NetworkPolicyEgressRule, ns string, d destination) bool {
	portOK := slices.ContainsFunc(rule.Ports, func(p networkingv1.NetworkPolicyPort) bool {
		proto := corev1.ProtocolTCP
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		return proto == d.protocol && p.Port != nil && p.Port.IntVal == d.port
	})
	return portOK && slices.ContainsFunc(rule.To, func(peer networkingv1.NetworkPolicyPeer) bool {
		nsOK := d.namespace == ns
		if peer.NamespaceSelector != nil {
			nsOK = shipped.Selects(peer.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": d.namespace})
		}
		podOK := peer.PodSelector == nil || len(d.labels) > 0 && shipped.Selects(peer.PodSelector, d.labels)
		return nsOK && podOK && peer.IPBlock == nil
	})
}

// Gap: the NetworkPolicies were ingress-only. For clusters that deny egress by default, each
// collector may reach the cluster's DNS and what its config sends to (the backend's namespace,
// or for an agent the gateway pods), and no rule allows everything.
func TestEgressPolicies(t *testing.T) {
	policies := objectsOf[networkingv1.NetworkPolicy](manifest(t, "networkpolicy.yaml"))
	dns := []destination{
		{"kube-system", map[string]string{"k8s-app": "kube-dns"}, 53, corev1.ProtocolUDP},
		{"kube-system", map[string]string{"k8s-app": "kube-dns"}, 53, corev1.ProtocolTCP},
	}
	for _, l := range layouts(t) {
		for _, w := range workloads(t, l) {
			t.Run(l.name+"/"+w.Name, func(t *testing.T) {
				cfg := parseConfig(t, w.Config)
				want := slices.Clone(dns)
				env := map[string]string{}
				for _, e := range w.Pod.Containers[0].Env {
					env[e.Name] = e.Value
				}
				if at(cfg, "exporters", "otlp_grpc/backend") != nil {
					host, port, ok := strings.Cut(env["VSR_TRACES_ENDPOINT"], ":")
					require.True(t, ok, "VSR_TRACES_ENDPOINT is host:port")
					labels := strings.Split(host, ".")
					require.GreaterOrEqual(t, len(labels), 3, "the example backend is a Service name: %s", host)
					p, err := strconv.Atoi(port)
					require.NoError(t, err)
					want = append(want, destination{labels[1], nil, int32(p), corev1.ProtocolTCP})
				}
				if hostnames, ok := at(cfg, "exporters", "load_balancing", "resolver", "static", "hostnames").([]any); ok {
					for _, h := range hostnames {
						m := regexp.MustCompile(`^passthrough:///[^.]+\.([^.:]+):(\d+)$`).FindStringSubmatch(h.(string))
						require.NotNil(t, m, "%s", h)
						p, err := strconv.Atoi(m[2])
						require.NoError(t, err)
						want = append(want, destination{shipped.Namespace, map[string]string{"app.kubernetes.io/name": m[1]}, int32(p), corev1.ProtocolTCP})
					}
				}
				for _, d := range want {
					allowed := slices.ContainsFunc(policies, func(p *networkingv1.NetworkPolicy) bool {
						return shipped.Selects(&p.Spec.PodSelector, w.Labels) && slices.Contains(p.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) &&
							slices.ContainsFunc(p.Spec.Egress, func(r networkingv1.NetworkPolicyEgressRule) bool { return egressAllows(r, shipped.Namespace, d) })
					})
					assert.True(t, allowed, "egress to %+v", d)
				}
				for _, p := range policies {
					for _, r := range p.Spec.Egress {
						assert.NotEmpty(t, r.To, "%s: every egress rule names its peers", p.Name)
						assert.NotEmpty(t, r.Ports, "%s: every egress rule names its ports", p.Name)
					}
				}
			})
		}
	}
}

// mergeConfig merges a fragment into a collector config as Helm merges values: maps key by key,
// anything else replaced.
func mergeConfig(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeConfig(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

// Gap: no auth extension was built in. The README's two examples of backend authentication,
// merged into the node collector's config, validate against the built binary.
func TestBackendAuthExamples(t *testing.T) {
	bin := otelcolBinary(t)
	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	examples := regexp.MustCompile("(?s)```yaml\n(# backend authentication[^\n]*\n.*?)```").FindAllSubmatch(readme, -1)
	require.Len(t, examples, 2)
	base := workloadOf(t, manifest(t, "daemonset.yaml"), "DaemonSet").Config
	for _, ex := range examples {
		cfg := parseConfig(t, base)
		mergeConfig(cfg, parseConfig(t, ex[1]))
		raw, err := yaml.Marshal(cfg)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "config.yaml")
		require.NoError(t, os.WriteFile(path, raw, 0o600))
		cmd := exec.Command(bin, "validate", "--config", path)
		cmd.Env = append(os.Environ(), "VSR_TRACES_ENDPOINT=127.0.0.1:4317", "VSR_TRACES_INSECURE=true", "VSR_TRACES_CA_FILE=",
			"VSR_HASH_KEY=0123456789abcdef0123", "MY_POD_IP=127.0.0.1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s\n%s", ex[1], out)
	}
}
