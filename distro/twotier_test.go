package distro

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/otelcol-vsr/otelcol-vsr/distro/shipped"
)

// twoTier is one way to install the two tiers: agents and gateways, raw or as chart releases.
type twoTier struct {
	name             string
	agents, gateways []shipped.Object
}

func twoTiers(t *testing.T) []twoTier {
	raw := manifest(t, "gateway.yaml")
	tiers := []twoTier{{"k8s/gateway.yaml", raw, raw}}
	helm := helmBinary(t)
	for _, overlay := range []string{"", "-tls"} {
		var rs [2]shipped.Release
		for i, name := range []string{"agent", "gateway"} {
			rs[i] = shipped.Release{Name: "otelcol-vsr-" + name, Values: "values-" + name + ".yaml"}
			if overlay != "" {
				rs[i].Overlays = []string{"values-" + name + overlay + ".yaml"}
			}
		}
		agents, err := shipped.Render(helm, repoRoot, rs[0])
		require.NoError(t, err)
		gateways, err := shipped.Render(helm, repoRoot, rs[1])
		require.NoError(t, err)
		tiers = append(tiers, twoTier{rs[0].Layout() + " with " + rs[1].Layout(), agents, gateways})
	}
	return tiers
}

func workloadOf(t *testing.T, objs []shipped.Object, kind string) shipped.Workload {
	ws, err := shipped.Workloads(objs)
	require.NoError(t, err)
	i := slices.IndexFunc(ws, func(w shipped.Workload) bool { return w.Kind == kind })
	require.GreaterOrEqual(t, i, 0, "a %s", kind)
	return ws[i]
}

// Defect: the agents' k8s resolver put gateway pod IPs in the ring, so a gateway that came back
// from a roll on a new IP owned other traces, and traces in flight were decided in pieces. The
// agents name every gateway pod by its stable DNS name, <statefulset>-<ordinal>.<headless
// Service>, one per replica, on the port the gateways listen on; passthrough, so that gRPC looks
// the name up again at each connection attempt rather than keeping an address for 30 s.
func TestAgentsNameGatewaysStably(t *testing.T) {
	for _, tier := range twoTiers(t) {
		t.Run(tier.name, func(t *testing.T) {
			agent := workloadOf(t, tier.agents, "DaemonSet")
			lb := at(parseConfig(t, agent.Config), "exporters", "load_balancing")
			require.NotNil(t, lb)
			resolvers := asMap(at(lb, "resolver"))
			require.Len(t, resolvers, 1)
			hostnames, ok := at(resolvers, "static", "hostnames").([]any)
			require.True(t, ok, "a static list of names, not %v", resolvers)

			sets := objectsOf[appsv1.StatefulSet](tier.gateways)
			require.Len(t, sets, 1)
			ss := sets[0]
			gateway := workloadOf(t, tier.gateways, "StatefulSet")
			grpcEndpoint, _ := at(parseConfig(t, gateway.Config), "receivers", "otlp", "protocols", "grpc", "endpoint").(string)
			port, err := strconv.Atoi(strings.TrimPrefix(grpcEndpoint, "${env:MY_POD_IP}:"))
			require.NoError(t, err, "the gateways listen on the pod's address: %s", grpcEndpoint)
			assert.True(t, slices.ContainsFunc(gateway.Pod.Containers[0].Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == int32(port) }),
				"the gateway container declares port %d", port)
			var want []any
			for i := range *ss.Spec.Replicas {
				want = append(want, fmt.Sprintf("passthrough:///%s-%d.%s:%d", ss.Name, i, ss.Spec.ServiceName, port))
			}
			assert.Equal(t, want, hostnames, "one name per gateway replica")
			i := slices.IndexFunc(objectsOf[corev1.Service](tier.gateways), func(s *corev1.Service) bool { return s.Name == ss.Spec.ServiceName })
			require.GreaterOrEqual(t, i, 0, "the headless Service the names live under")
			svc := objectsOf[corev1.Service](tier.gateways)[i]
			assert.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP)
			assert.True(t, shipped.Selects(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, gateway.Labels))
			assert.Equal(t, "Parallel", string(ss.Spec.PodManagementPolicy), "a gateway that is away does not hold the others' start")
		})
	}
}

// Defect: the raw gateway manifest named its namespace in the agents' config. No layout names
// one: the raw manifests carry none, and the chart renders the same objects in any namespace.
func TestLayoutsNameNoNamespace(t *testing.T) {
	for _, name := range []string{"daemonset.yaml", "gateway.yaml"} {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "distro", "k8s", name))
		require.NoError(t, err)
		for _, o := range manifest(t, name) {
			assert.Empty(t, o.(metav1.Object).GetNamespace(), "%s: %s", name, o.GetName())
		}
		for line := range strings.Lines(string(raw)) {
			if strings.HasPrefix(strings.TrimSpace(line), "#") || strings.Contains(line, "tempo-distributor.observability") {
				continue // comments, and the example backend address (Tempo's namespace, not ours)
			}
			assert.NotContains(t, line, shipped.Namespace, "%s names a namespace", name)
		}
	}
	helm := helmBinary(t)
	for _, r := range shipped.Releases {
		here, err := shipped.Template(helm, repoRoot, r, shipped.Namespace, shipped.CurrentCluster...)
		require.NoError(t, err)
		there, err := shipped.Template(helm, repoRoot, r, "telemetry", shipped.CurrentCluster...)
		require.NoError(t, err)
		strip := func(b []byte) string {
			return regexp.MustCompile(`(?m)^\s*(namespace|checksum/config): \S+\n`).ReplaceAllString(string(b), "")
		}
		assert.Equal(t, strip(here), strip(there), "%s renders the same in any namespace", r.Layout())
	}
}

// The TLS overlays change the base releases only by TLS: the agents verify the gateways against a
// CA, the gateways serve with a key pair, each from a required Secret mounted read-only where
// the config reads it, and every volume of the base release is still there (Helm replaces
// lists).
func TestTLSOverlays(t *testing.T) {
	helm := helmBinary(t)
	for _, r := range shipped.Releases {
		if len(r.Overlays) == 0 {
			continue
		}
		t.Run(r.Layout(), func(t *testing.T) {
			base, err := shipped.Render(helm, repoRoot, shipped.Release{Name: r.Name, Values: r.Values})
			require.NoError(t, err)
			over, err := shipped.Render(helm, repoRoot, r)
			require.NoError(t, err)
			ws, err := shipped.Workloads(base)
			require.NoError(t, err)
			b := ws[0]
			ws, err = shipped.Workloads(over)
			require.NoError(t, err)
			o := ws[0]
			baseCfg, overCfg := parseConfig(t, b.Config), parseConfig(t, o.Config)

			var tls map[string]any
			var files []string
			switch b.Kind {
			case "DaemonSet":
				tlsAt := []string{"exporters", "load_balancing", "protocol", "otlp", "tls"}
				tls = asMap(at(overCfg, tlsAt...))
				assert.Equal(t, false, tls["insecure"])
				files = []string{tls["ca_file"].(string)}
				asMap(at(overCfg, tlsAt[:len(tlsAt)-1]...))["tls"] = at(baseCfg, tlsAt...)
			case "StatefulSet":
				grpc := asMap(at(overCfg, "receivers", "otlp", "protocols", "grpc"))
				tls = asMap(grpc["tls"])
				files = []string{tls["cert_file"].(string), tls["key_file"].(string)}
				delete(grpc, "tls")
			}
			require.NotEmpty(t, tls)
			assert.Equal(t, baseCfg, overCfg, "the overlay changes TLS only")

			c := o.Pod.Containers[0]
			for _, f := range files {
				i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return strings.HasPrefix(f, m.MountPath+"/") })
				require.GreaterOrEqual(t, i, 0, "%s is mounted", f)
				assert.True(t, c.VolumeMounts[i].ReadOnly)
				v := o.Pod.Volumes[slices.IndexFunc(o.Pod.Volumes, func(v corev1.Volume) bool { return v.Name == c.VolumeMounts[i].Name })]
				require.NotNil(t, v.Secret, "%s comes from a Secret", f)
				assert.True(t, v.Secret.Optional == nil || !*v.Secret.Optional, "TLS, once asked for, needs its Secret")
			}
			for _, v := range b.Pod.Volumes {
				assert.Contains(t, o.Pod.Volumes, v, "the overlay keeps volume %s", v.Name)
			}
			for _, m := range b.Pod.Containers[0].VolumeMounts {
				assert.Contains(t, c.VolumeMounts, m)
			}
		})
	}
}
