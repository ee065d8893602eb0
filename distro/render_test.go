package distro

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/otelcol-vsr/otelcol-vsr/distro/shipped"
)

// Defect: helm template without the cluster's capabilities assumes Kubernetes 1.20 and renders
// the PodDisruptionBudget as policy/v1beta1, which no cluster since 1.25 serves; the tests
// decoded it into the v1 type and did not see it. The layouts render as a current cluster
// would (shipped.CurrentCluster, the flags the README gives GitOps users), and the decoder
// refuses an API version a current cluster does not serve.
func TestRenderAsCurrentCluster(t *testing.T) {
	helm := helmBinary(t)
	r := shipped.Release{Name: "otelcol-vsr-gateway", Values: "values-gateway.yaml"}
	bare, err := shipped.Template(helm, repoRoot, r, shipped.Namespace)
	require.NoError(t, err)
	assert.Contains(t, string(bare), "apiVersion: policy/v1beta1", "helm template's default capabilities")
	_, err = shipped.Decode(bare)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "PodDisruptionBudget is policy/v1beta1")

	current, err := shipped.Template(helm, repoRoot, r, shipped.Namespace, shipped.CurrentCluster...)
	require.NoError(t, err)
	objs, err := shipped.Decode(current)
	require.NoError(t, err)
	pdbs := objectsOf[policyv1.PodDisruptionBudget](objs)
	require.Len(t, pdbs, 1)
	assert.Equal(t, "policy/v1", pdbs[0].APIVersion)

	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	require.NoError(t, err)
	flags := strings.Join(shipped.CurrentCluster, " ")
	assert.True(t, strings.Contains(string(readme), flags), "the README gives the flags %s", flags)
}
