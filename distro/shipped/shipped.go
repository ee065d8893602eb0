// Package shipped reads the deployment files the project ships the way Kubernetes and Helm
// read them: manifests decoded strictly into the API types, the official collector chart
// rendered with the values under distro/helm, and the collector configs both carry. The
// distribution tests check these; the end-to-end tests run their collector configs.
package shipped

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// Namespace is where the README installs the collectors.
const Namespace = "observability"

// Object is a decoded Kubernetes object.
type Object interface {
	GetName() string
	GetLabels() map[string]string
}

// kinds maps each kind the project ships to the API version a current cluster serves it at and
// its API type; any other kind or version is an error.
var kinds = map[string]struct {
	apiVersion string
	new        func() Object
}{
	"ServiceAccount":      {"v1", func() Object { return &corev1.ServiceAccount{} }},
	"ConfigMap":           {"v1", func() Object { return &corev1.ConfigMap{} }},
	"Secret":              {"v1", func() Object { return &corev1.Secret{} }},
	"Service":             {"v1", func() Object { return &corev1.Service{} }},
	"DaemonSet":           {"apps/v1", func() Object { return &appsv1.DaemonSet{} }},
	"StatefulSet":         {"apps/v1", func() Object { return &appsv1.StatefulSet{} }},
	"Role":                {"rbac.authorization.k8s.io/v1", func() Object { return &rbacv1.Role{} }},
	"RoleBinding":         {"rbac.authorization.k8s.io/v1", func() Object { return &rbacv1.RoleBinding{} }},
	"PriorityClass":       {"scheduling.k8s.io/v1", func() Object { return &schedulingv1.PriorityClass{} }},
	"NetworkPolicy":       {"networking.k8s.io/v1", func() Object { return &networkingv1.NetworkPolicy{} }},
	"PodDisruptionBudget": {"policy/v1", func() Object { return &policyv1.PodDisruptionBudget{} }},
	"PodMonitor":          {"monitoring.coreos.com/v1", func() Object { return &monitoringv1.PodMonitor{} }},
	"PrometheusRule":      {"monitoring.coreos.com/v1", func() Object { return &monitoringv1.PrometheusRule{} }},
}

var documentSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// Decode decodes every document of a multi-document YAML stream strictly: an unknown or
// misplaced field is an error, as the API server's strict field validation makes it, and so is
// an API version a current cluster does not serve (policy/v1beta1, gone since 1.25).
func Decode(raw []byte) ([]Object, error) {
	var objs []Object
	for i, doc := range documentSeparator.Split(string(raw), -1) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if head.Kind == "" {
			if strings.TrimSpace(stripComments(doc)) != "" {
				return nil, fmt.Errorf("document %d has no kind", i)
			}
			continue
		}
		k, ok := kinds[head.Kind]
		if !ok {
			return nil, fmt.Errorf("document %d: kind %q is not one the project ships", i, head.Kind)
		}
		if head.APIVersion != k.apiVersion {
			return nil, fmt.Errorf("document %d: %s is %s, which a current cluster does not serve; want %s", i, head.Kind, head.APIVersion, k.apiVersion)
		}
		obj := k.new()
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, head.Kind, err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
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

// Manifest decodes distro/k8s/<name> under the repository root.
func Manifest(root, name string) ([]Object, error) {
	raw, err := os.ReadFile(filepath.Join(root, "distro", "k8s", name))
	if err != nil {
		return nil, err
	}
	objs, err := Decode(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return objs, nil
}

// Release is one Helm release of the official chart with distro/helm's values files.
type Release struct {
	Name     string   // the release name the README installs it under
	Values   string   // file under distro/helm
	Overlays []string // files under distro/helm given after Values
}

// Layout is the release's name among the layouts: helm/<values>[+<overlay>...].
func (r Release) Layout() string {
	return "helm/" + strings.Join(append([]string{r.Values}, r.Overlays...), "+")
}

// Releases are the values files, each under the release name the README uses.
var Releases = []Release{
	{Name: "otelcol-vsr", Values: "values-daemonset.yaml"},
	{Name: "otelcol-vsr-gateway", Values: "values-gateway.yaml"},
	{Name: "otelcol-vsr-agent", Values: "values-agent.yaml"},
	{Name: "otelcol-vsr-gateway", Values: "values-gateway.yaml", Overlays: []string{"values-gateway-tls.yaml"}},
	{Name: "otelcol-vsr-agent", Values: "values-agent.yaml", Overlays: []string{"values-agent-tls.yaml"}},
}

// ChartDir is the official collector chart the values are for: VSR_HELM_CHART, or the copy
// in third_party/helm.
func ChartDir(root string) string {
	if dir := os.Getenv("VSR_HELM_CHART"); dir != "" {
		return dir
	}
	return filepath.Join(root, "third_party", "helm", "opentelemetry-collector-0.170.0")
}

// CurrentCluster are the capabilities helm template must be told to render as helm install
// would against a current cluster: without them Helm assumes Kubernetes 1.20, and the chart
// renders its PodDisruptionBudget as policy/v1beta1, which no cluster since 1.25 serves.
var CurrentCluster = []string{"--kube-version", "1.35.0", "--api-versions", "policy/v1/PodDisruptionBudget"}

// Template renders the chart with a release's values into namespace, as helm template does
// with the given capability flags.
func Template(helm, root string, r Release, namespace string, capabilities ...string) ([]byte, error) {
	args := []string{"template", r.Name, ChartDir(root), "--namespace", namespace}
	for _, v := range append([]string{r.Values}, r.Overlays...) {
		args = append(args, "--values", filepath.Join(root, "distro", "helm", v))
	}
	cmd := exec.Command(helm, append(args, capabilities...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("helm template %s: %w: %s", r.Layout(), err, stderr.String())
	}
	return out, nil
}

// Render renders the chart with a release's values as helm install would apply it to
// Namespace in a current cluster, and decodes the objects.
func Render(helm, root string, r Release) ([]Object, error) {
	out, err := Template(helm, root, r, Namespace, CurrentCluster...)
	if err != nil {
		return nil, err
	}
	objs, err := Decode(out)
	if err != nil {
		return nil, fmt.Errorf("rendered %s: %w", r.Layout(), err)
	}
	return objs, nil
}

// Layouts are the ways to install the collectors, by name: each raw manifest that runs them
// (k8s/<file>) and each chart release (Release.Layout).
func Layouts() []string {
	names := []string{"k8s/daemonset.yaml", "k8s/gateway.yaml"}
	for _, r := range Releases {
		names = append(names, r.Layout())
	}
	return names
}

// Load reads a layout by name: a raw manifest decoded, or a release rendered with helm.
func Load(helm, root, layout string) ([]Object, error) {
	if file, ok := strings.CutPrefix(layout, "k8s/"); ok {
		return Manifest(root, file)
	}
	for _, r := range Releases {
		if layout == r.Layout() {
			return Render(helm, root, r)
		}
	}
	return nil, fmt.Errorf("no layout %q", layout)
}

// CollectorConfig is the collector config a ConfigMap carries: config.yaml in the raw
// manifests, relay in the chart's.
func CollectorConfig(cm *corev1.ConfigMap) ([]byte, error) {
	for _, key := range []string{"config.yaml", "relay"} {
		if cfg, ok := cm.Data[key]; ok {
			return []byte(cfg), nil
		}
	}
	return nil, fmt.Errorf("ConfigMap %s carries no collector config", cm.Name)
}

// Workload is a collector workload with the config it runs.
type Workload struct {
	Kind        string // DaemonSet or StatefulSet
	Name        string
	Labels      map[string]string // the pod's
	Annotations map[string]string // the pod's
	Pod         corev1.PodSpec
	Config      []byte
}

// Workloads pairs each DaemonSet and StatefulSet among objs with the config its pod mounts.
func Workloads(objs []Object) ([]Workload, error) {
	configMaps := map[string]*corev1.ConfigMap{}
	for _, o := range objs {
		if cm, ok := o.(*corev1.ConfigMap); ok {
			configMaps[cm.Name] = cm
		}
	}
	var out []Workload
	var errs []error
	for _, o := range objs {
		w := Workload{Name: o.GetName()}
		switch v := o.(type) {
		case *appsv1.DaemonSet:
			w.Kind, w.Labels, w.Annotations, w.Pod = "DaemonSet", v.Spec.Template.Labels, v.Spec.Template.Annotations, v.Spec.Template.Spec
		case *appsv1.StatefulSet:
			w.Kind, w.Labels, w.Annotations, w.Pod = "StatefulSet", v.Spec.Template.Labels, v.Spec.Template.Annotations, v.Spec.Template.Spec
		default:
			continue
		}
		cm := mountedConfigMap(w.Pod, configMaps)
		if cm == nil {
			errs = append(errs, fmt.Errorf("%s %s mounts no ConfigMap shipped beside it", w.Kind, w.Name))
			continue
		}
		cfg, err := CollectorConfig(cm)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		w.Config = cfg
		out = append(out, w)
	}
	return out, errors.Join(errs...)
}

func mountedConfigMap(pod corev1.PodSpec, configMaps map[string]*corev1.ConfigMap) *corev1.ConfigMap {
	for _, v := range pod.Volumes {
		if v.ConfigMap != nil && configMaps[v.ConfigMap.Name] != nil {
			return configMaps[v.ConfigMap.Name]
		}
	}
	return nil
}

// Selects reports whether a label selector matches labels.
func Selects(sel *metav1.LabelSelector, podLabels map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && !s.Empty() && s.Matches(labels.Set(podLabels))
}
