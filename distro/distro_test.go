// Package distro holds the deployment files; these tests check them statically, since no
// container engine or cluster runs here: manifests decode strictly into the Kubernetes API
// types, and every collector config shipped validates against the built distribution.
package distro

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"
)

// kinds maps each kind the manifests use to its API type.
var kinds = map[string]func() any{
	"Namespace":      func() any { return &corev1.Namespace{} },
	"ServiceAccount": func() any { return &corev1.ServiceAccount{} },
	"ConfigMap":      func() any { return &corev1.ConfigMap{} },
	"Service":        func() any { return &corev1.Service{} },
	"DaemonSet":      func() any { return &appsv1.DaemonSet{} },
	"StatefulSet":    func() any { return &appsv1.StatefulSet{} },
	"Role":           func() any { return &rbacv1.Role{} },
	"RoleBinding":    func() any { return &rbacv1.RoleBinding{} },
}

// decodeManifests decodes every document of a multi-document YAML file strictly: an unknown or
// misplaced field is an error, as kubectl's server-side validation would make it.
func decodeManifests(t *testing.T, path string) []any {
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var objs []any
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(raw), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var meta struct {
			Kind string `json:"kind"`
		}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &meta), "%s document %d", path, i)
		newObj, ok := kinds[meta.Kind]
		require.True(t, ok, "%s document %d: unexpected kind %q", path, i, meta.Kind)
		obj := newObj()
		require.NoError(t, yaml.UnmarshalStrict([]byte(doc), obj), "%s document %d (%s)", path, i, meta.Kind)
		objs = append(objs, obj)
	}
	return objs
}

func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}

func find[T any](objs []any, name string) *T {
	for _, o := range objs {
		if v, ok := o.(*T); ok && reflectName(v) == name {
			return v
		}
	}
	return nil
}

func reflectName(o any) string {
	switch v := o.(type) {
	case *appsv1.DaemonSet:
		return v.Name
	case *appsv1.StatefulSet:
		return v.Name
	case *corev1.ConfigMap:
		return v.Name
	case *corev1.Service:
		return v.Name
	}
	return ""
}

func container(t *testing.T, spec corev1.PodSpec) corev1.Container {
	require.Len(t, spec.Containers, 1)
	return spec.Containers[0]
}

func envNames(c corev1.Container) []string {
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
	}
	return names
}

// checkCollectorPod: non-root uid 10001, health probes on 13133, GOMEMLIMIT from the limit.
func checkCollectorPod(t *testing.T, spec corev1.PodSpec) {
	c := container(t, spec)
	require.NotNil(t, spec.SecurityContext)
	assert.Equal(t, int64(10001), *spec.SecurityContext.RunAsUser)
	for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		require.NotNil(t, probe)
		assert.Equal(t, "health", probe.HTTPGet.Port.String())
	}
	assert.True(t, slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "health" && p.ContainerPort == 13133 }))
	assert.Contains(t, envNames(c), "GOMEMLIMIT")
	for _, e := range c.Env {
		if e.Name == "MEMORY_LIMIT_MIB" {
			assert.Equal(t, "limits.memory", e.ValueFrom.ResourceFieldRef.Resource)
		}
	}
	assert.NotNil(t, c.Resources.Limits.Memory())
}

func TestDaemonSetManifest(t *testing.T) {
	objs := decodeManifests(t, filepath.Join("k8s", "daemonset.yaml"))
	ds := find[appsv1.DaemonSet](objs, "otelcol-vsr")
	require.NotNil(t, ds)
	checkCollectorPod(t, ds.Spec.Template.Spec)
	hostPorts := map[int32]bool{}
	for _, p := range container(t, ds.Spec.Template.Spec).Ports {
		if p.HostPort != 0 {
			hostPorts[p.HostPort] = true
		}
	}
	assert.Equal(t, map[int32]bool{4317: true, 4318: true}, hostPorts)
	require.NotNil(t, find[corev1.ConfigMap](objs, "otelcol-vsr"))
}

func TestGatewayManifest(t *testing.T) {
	objs := decodeManifests(t, filepath.Join("k8s", "gateway.yaml"))
	agent := find[appsv1.DaemonSet](objs, "otelcol-vsr-agent")
	gateway := find[appsv1.StatefulSet](objs, "otelcol-vsr-gateway")
	svc := find[corev1.Service](objs, "otelcol-vsr-gateway")
	require.NotNil(t, agent)
	require.NotNil(t, gateway)
	require.NotNil(t, svc)
	checkCollectorPod(t, agent.Spec.Template.Spec)
	checkCollectorPod(t, gateway.Spec.Template.Spec)
	assert.Equal(t, corev1.ClusterIPNone, svc.Spec.ClusterIP, "the resolver needs every gateway pod")
	assert.Equal(t, svc.Name, gateway.Spec.ServiceName)
	assert.Equal(t, svc.Spec.Selector, gateway.Spec.Template.Labels)

	agentCfg := configOf(t, find[corev1.ConfigMap](objs, "otelcol-vsr-agent"))
	lb := agentCfg["exporters"].(map[string]any)["load_balancing"].(map[string]any)
	assert.Equal(t, "traceID", lb["routing_key"])
	assert.Equal(t, "otelcol-vsr-gateway.observability",
		lb["resolver"].(map[string]any)["k8s"].(map[string]any)["service"], "the resolver targets the headless Service")
	gatewayCfg := configOf(t, find[corev1.ConfigMap](objs, "otelcol-vsr-gateway"))
	assert.Contains(t, gatewayCfg["processors"], "vsr_sampler")
}

func configOf(t *testing.T, cm *corev1.ConfigMap) map[string]any {
	require.NotNil(t, cm)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(cm.Data["config.yaml"]), &cfg))
	return cfg
}

// shippedConfigs are every collector configuration the project ships, by name.
func shippedConfigs(t *testing.T) map[string][]byte {
	configs := map[string][]byte{}
	root, err := os.ReadFile(filepath.Join("..", "collector-config.yaml"))
	require.NoError(t, err)
	configs["collector-config.yaml"] = root
	for _, file := range []string{"daemonset.yaml", "gateway.yaml"} {
		for _, o := range decodeManifests(t, filepath.Join("k8s", file)) {
			if cm, ok := o.(*corev1.ConfigMap); ok {
				configs[file+"/"+cm.Name] = []byte(cm.Data["config.yaml"])
			}
		}
	}
	for _, dir := range []string{filepath.Join("..", "bench", "configs"), filepath.Join("..", "e2e", "configs")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		require.NoError(t, err)
		require.NotEmpty(t, files, dir)
		for _, f := range files {
			raw, err := os.ReadFile(f)
			require.NoError(t, err)
			configs[f] = raw
		}
	}
	raw, err := os.ReadFile(filepath.Join("helm", "values-daemonset.yaml"))
	require.NoError(t, err)
	var values map[string]any
	require.NoError(t, yaml.Unmarshal(raw, &values))
	// The chart merges this into its defaults, a null deleting a default: what is left is ours.
	helmCfg, err := yaml.Marshal(dropNulls(values["config"]))
	require.NoError(t, err)
	configs["helm/values-daemonset.yaml"] = helmCfg
	return configs
}

func dropNulls(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	out := map[string]any{}
	for k, x := range m {
		if x != nil {
			out[k] = dropNulls(x)
		}
	}
	return out
}

// otelcolBinary is the built distribution: make test passes OTELCOL_VSR_BIN.
func otelcolBinary(t *testing.T) string {
	bin := os.Getenv("OTELCOL_VSR_BIN")
	if bin == "" {
		bin = filepath.Join("..", "_build", "otelcol-vsr")
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the distribution is not built (%v): run make build", err)
		}
		t.Skipf("the distribution is not built (%v): make test builds it", err)
	}
	return bin
}

func TestShippedConfigsValidate(t *testing.T) {
	bin := otelcolBinary(t)
	env := append(os.Environ(),
		"VSR_TRACES_ENDPOINT=127.0.0.1:4317", "VSR_TRACES_INSECURE=true",
		"VSR_HASH_KEY=0123456789abcdef0123", "MY_POD_IP=127.0.0.1", "VSR_STORAGE_DIR="+t.TempDir(),
		// The benchmark's and end-to-end tests' configs take their ports from the environment.
		"BENCH_OTLP_PORT=14317", "BENCH_HEALTH_PORT=14318", "BENCH_SINK=127.0.0.1:14319",
		"E2E_OTLP_PORT=14317", "E2E_HEALTH_PORT=14318", "E2E_METRICS_PORT=14320", "E2E_GATEWAY_1=14321", "E2E_GATEWAY_2=14322")
	variants := map[string][]string{"": nil, " with backend": {"VSR_EXPORTERS=[debug, otlp_grpc/backend, otlp_http/backend]"}}
	for name, cfg := range shippedConfigs(t) {
		for variant, extra := range variants {
			if variant != "" && name != "collector-config.yaml" {
				continue
			}
			t.Run(name+variant, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "config.yaml")
				require.NoError(t, os.WriteFile(path, cfg, 0o600))
				cmd := exec.Command(bin, "validate", "--config", path)
				cmd.Env = append(env, extra...)
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "%s", out)
			})
		}
	}
}

// A config with a mistake must fail validation, or the test above proves nothing.
func TestValidateCatchesMistakes(t *testing.T) {
	bin := otelcolBinary(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	bad := strings.Replace(string(shippedConfigs(t)["collector-config.yaml"]), "default_percentage:", "default_percent:", 1)
	require.NoError(t, os.WriteFile(path, []byte(bad), 0o600))
	out, err := exec.Command(bin, "validate", "--config", path).CombinedOutput()
	require.Error(t, err)
	assert.Contains(t, string(out), "default_percent")
}

// The Dockerfile is checked statically: no engine runs here to build it.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	var froms, users, exposes []string
	var entrypoint string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			froms = append(froms, strings.Join(fields[1:], " "))
		case "USER":
			users = append(users, fields[1])
		case "EXPOSE":
			exposes = append(exposes, fields[1:]...)
		case "ENTRYPOINT":
			entrypoint = strings.Join(fields[1:], " ")
		case "ADD":
			t.Errorf("ADD fetches or unpacks implicitly; use COPY: %s", sc.Text())
		}
	}
	require.GreaterOrEqual(t, len(froms), 2, "multi-stage")
	final := froms[len(froms)-1]
	assert.Regexp(t, `^(scratch|gcr\.io/distroless/\S+)$`, final, "final stage from scratch or distroless")
	assert.Equal(t, []string{"10001:10001"}, users)
	assert.ElementsMatch(t, []string{"4317", "4318", "13133"}, exposes)
	assert.True(t, strings.HasPrefix(entrypoint, "["), "exec-form entrypoint, so signals reach the collector")
	assert.Contains(t, string(raw), "CGO_ENABLED=0", "a static binary for a libc-less image")
	for _, f := range froms[:len(froms)-1] {
		assert.Contains(t, f, " AS ", fmt.Sprintf("build stage %q is named", f))
	}
}
