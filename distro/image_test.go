package distro

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/otelcol-vsr/otelcol-vsr/distro/shipped"
)

// ociDescriptor, ociIndex, ociManifest and ociConfig are as much of the OCI image spec as the
// test reads: it opens the layout by hand, as any OCI tool would, not with the library that
// wrote it.
type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

type ociIndex struct {
	SchemaVersion int             `json:"schemaVersion"`
	Manifests     []ociDescriptor `json:"manifests"`
}

type ociManifest struct {
	MediaType string          `json:"mediaType"`
	Config    ociDescriptor   `json:"config"`
	Layers    []ociDescriptor `json:"layers"`
}

type ociConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		User         string              `json:"User"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		Env          []string            `json:"Env"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		WorkingDir   string              `json:"WorkingDir"`
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

// imageFile is one file of the image's filesystem.
type imageFile struct {
	header *tar.Header
	body   []byte
}

// openImage reads the image make image wrote: every blob checked against its digest and size,
// the layers unpacked in order.
func openImage(t *testing.T, dir string) (ociDescriptor, ociConfig, map[string]imageFile) {
	blob := func(d ociDescriptor) []byte {
		algo, hexDigest, ok := strings.Cut(d.Digest, ":")
		require.True(t, ok && algo == "sha256", d.Digest)
		raw, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", hexDigest))
		require.NoError(t, err)
		sum := sha256.Sum256(raw)
		require.Equal(t, hexDigest, hex.EncodeToString(sum[:]), "blob content matches its digest")
		require.Equal(t, d.Size, int64(len(raw)))
		return raw
	}
	layoutFile, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	require.NoError(t, err)
	assert.JSONEq(t, `{"imageLayoutVersion": "1.0.0"}`, string(layoutFile))
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	require.NoError(t, err)
	var index ociIndex
	require.NoError(t, json.Unmarshal(raw, &index))
	require.Len(t, index.Manifests, 1)
	desc := index.Manifests[0]
	require.Equal(t, "application/vnd.oci.image.manifest.v1+json", desc.MediaType)
	var m ociManifest
	require.NoError(t, json.Unmarshal(blob(desc), &m))
	require.Equal(t, "application/vnd.oci.image.config.v1+json", m.Config.MediaType)
	var cfg ociConfig
	require.NoError(t, json.Unmarshal(blob(m.Config), &cfg))
	require.Len(t, cfg.RootFS.DiffIDs, len(m.Layers))
	files := map[string]imageFile{}
	for i, l := range m.Layers {
		require.Equal(t, "application/vnd.oci.image.layer.v1.tar+gzip", l.MediaType)
		zr, err := gzip.NewReader(bytes.NewReader(blob(l)))
		require.NoError(t, err)
		uncompressed, err := io.ReadAll(zr)
		require.NoError(t, err)
		sum := sha256.Sum256(uncompressed)
		require.Equal(t, cfg.RootFS.DiffIDs[i], "sha256:"+hex.EncodeToString(sum[:]), "diff_id of layer %d", i)
		tr := tar.NewReader(bytes.NewReader(uncompressed))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			body, err := io.ReadAll(tr)
			require.NoError(t, err)
			files["/"+strings.TrimSuffix(h.Name, "/")] = imageFile{h, body}
		}
	}
	return desc, cfg, files
}

// imageRepository is the repository every manifest and values file names the image by, and
// make image tags it with (IMAGE_REPOSITORY in the Makefile).
func imageRepository(t *testing.T) string {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^IMAGE_REPOSITORY \?= (\S+)$`).FindStringSubmatch(string(raw))
	require.NotNil(t, m, "the Makefile sets IMAGE_REPOSITORY")
	return m[1]
}

// distVersion is the distribution's version (builder-config.yaml), the image's tag.
func distVersion(t *testing.T) string {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "builder-config.yaml"))
	require.NoError(t, err)
	var bc struct {
		Dist struct {
			Version string `yaml:"version"`
		} `yaml:"dist"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &bc))
	require.NotEmpty(t, bc.Dist.Version)
	return bc.Dist.Version
}

// Defect: every manifest ran an image that nothing built. make image builds it without a
// container engine (distro/image); opened from its OCI layout, it runs the built binary as uid
// 10001, which its passwd names, from scratch with CA certificates, the embedded default config
// and state directories that user owns, and the binary it carries lists the distribution's
// components.
func TestImage(t *testing.T) {
	dir := tool(t, "OTELCOL_VSR_IMAGE", filepath.Join(repoRoot, "_image", "otelcol-vsr"), "make test builds it (make image)")
	desc, cfg, files := openImage(t, dir)
	ref := imageRepository(t) + ":" + distVersion(t)
	assert.Equal(t, distVersion(t), desc.Annotations["org.opencontainers.image.ref.name"])
	assert.Equal(t, ref, desc.Annotations["io.otelcol-vsr.image.name"])
	require.NotNil(t, desc.Platform)
	assert.Equal(t, "linux", cfg.OS)
	assert.Equal(t, desc.Platform.Architecture, cfg.Architecture)

	assert.Equal(t, "10001:10001", cfg.Config.User)
	assert.Equal(t, []string{"/otelcol-vsr"}, cfg.Config.Entrypoint)
	assert.Equal(t, []string{"--config", "/etc/otelcol-vsr/config.yaml"}, cfg.Config.Cmd)
	passwd := string(files["/etc/passwd"].body)
	assert.Regexp(t, `(?m)^otelcol-vsr:x:10001:10001:[^:]*:/var/lib/otelcol-vsr:/sbin/nologin$`, passwd)
	assert.Regexp(t, `(?m)^otelcol-vsr:x:10001:`, string(files["/etc/group"].body))

	defaultConfig, err := os.ReadFile(filepath.Join(repoRoot, "collector-config.yaml"))
	require.NoError(t, err)
	assert.Equal(t, string(defaultConfig), string(files["/etc/otelcol-vsr/config.yaml"].body), "the embedded default config")

	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(files["/etc/ssl/certs/ca-certificates.crt"].body), "CA certificates where Go reads them")
	assert.Greater(t, len(regexp.MustCompile("BEGIN CERTIFICATE").FindAll(files["/etc/ssl/certs/ca-certificates.crt"].body, -1)), 100)

	env := map[string]string{}
	for _, kv := range cfg.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, dirEnv := range []string{"VSR_STORAGE_DIR", "VSR_SPILL_DIR", "VSR_JOURNAL_DIR"} {
		f, ok := files[env[dirEnv]]
		require.True(t, ok, "%s (%s) exists in the image", dirEnv, env[dirEnv])
		assert.Equal(t, byte(tar.TypeDir), f.header.Typeflag)
		assert.Equal(t, 10001, f.header.Uid, "%s is the collector's", env[dirEnv])
	}

	bin, ok := files["/otelcol-vsr"]
	require.True(t, ok)
	assert.Equal(t, int64(0o755), bin.header.Mode&0o777)
	extracted := filepath.Join(t.TempDir(), "otelcol-vsr")
	require.NoError(t, os.WriteFile(extracted, bin.body, 0o755))
	out, err := exec.Command(extracted, "components").CombinedOutput()
	require.NoError(t, err, "%s", out)
	listed := componentNames(t, out)
	for _, want := range []string{"otlp", "vsr_attributes", "vsr_sampler", "vsr_requests", "memory_limiter", "load_balancing",
		"otlp_grpc", "otlp_http", "file_storage", "health_check", "bearertokenauth", "headers_setter"} {
		assert.Contains(t, listed, want)
	}
	built, err := exec.Command(otelcolBinary(t), "components").CombinedOutput()
	require.NoError(t, err)
	assert.Equal(t, string(built), string(out), "the image carries the binary make build built")
}

// componentNames are the component types `otelcol-vsr components` lists.
func componentNames(t *testing.T, out []byte) []string {
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(out, &doc))
	var names []string
	for _, kind := range []string{"receivers", "processors", "exporters", "extensions", "connectors"} {
		list, _ := doc[kind].([]any)
		for _, c := range list {
			if n, ok := at(c, "name").(string); ok {
				names = append(names, n)
			}
		}
	}
	require.NotEmpty(t, names, "%s", out)
	return names
}

// Manifests and values name the image by one reference, the one make image tags: the
// repository to override (image.repository in the values, the image name for kustomize's
// images transformer) and the distribution's version.
func TestLayoutsRunTheImage(t *testing.T) {
	want := imageRepository(t) + ":" + distVersion(t)
	for _, l := range layouts(t) {
		for _, w := range workloads(t, l) {
			assert.Equal(t, want, w.Pod.Containers[0].Image, "%s/%s", l.name, w.Name)
		}
	}
	for _, r := range shipped.Releases {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "distro", "helm", r.Values))
		require.NoError(t, err)
		var values struct {
			Image struct{ Repository, Tag string } `yaml:"image"`
		}
		require.NoError(t, yaml.Unmarshal(raw, &values))
		assert.Equal(t, imageRepository(t), values.Image.Repository, r.Values)
		assert.Equal(t, distVersion(t), values.Image.Tag, r.Values)
	}
}

// dockerfileFinal is the final stage of distro/Dockerfile, as far as the image config goes.
type dockerfileFinal struct {
	from, user, entrypoint, cmd string
	workdir                     string
	env                         map[string]string
	exposes                     []string
	copies                      []string // destinations
	ownedCopies                 []string // destinations copied --chown=10001:10001
}

func parseDockerfile(t *testing.T) (stages []string, final dockerfileFinal) {
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	sc := bufio.NewScanner(bytes.NewReader(bytes.ReplaceAll(raw, []byte("\\\n"), nil)))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		rest := strings.Join(fields[1:], " ")
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			stages = append(stages, rest)
			final = dockerfileFinal{from: rest, env: map[string]string{}}
		case "USER":
			final.user = rest
		case "WORKDIR":
			final.workdir = rest
		case "EXPOSE":
			final.exposes = append(final.exposes, fields[1:]...)
		case "ENTRYPOINT":
			final.entrypoint = rest
		case "CMD":
			final.cmd = rest
		case "ENV":
			for _, kv := range fields[1:] {
				k, v, _ := strings.Cut(kv, "=")
				final.env[k] = v
			}
		case "COPY":
			dst := fields[len(fields)-1]
			final.copies = append(final.copies, dst)
			if slices.Contains(fields, "--chown=10001:10001") {
				final.ownedCopies = append(final.ownedCopies, dst)
			}
		case "ADD":
			t.Errorf("ADD fetches or unpacks implicitly; use COPY: %s", sc.Text())
		}
	}
	return stages, final
}

// distro/Dockerfile builds the same image with a container engine: the same user, entrypoint,
// command, environment and ports as make image's, and the same files (its build stage runs
// distro/image -rootfs).
func TestDockerfileMatchesImage(t *testing.T) {
	dir := tool(t, "OTELCOL_VSR_IMAGE", filepath.Join(repoRoot, "_image", "otelcol-vsr"), "make test builds it (make image)")
	_, cfg, files := openImage(t, dir)
	_, final := parseDockerfile(t)
	quoted := func(xs []string) string {
		b, err := json.Marshal(xs)
		require.NoError(t, err)
		return strings.ReplaceAll(string(b), `","`, `", "`)
	}
	assert.Equal(t, "scratch", final.from)
	assert.Equal(t, cfg.Config.User, final.user)
	assert.Equal(t, quoted(cfg.Config.Entrypoint), final.entrypoint)
	assert.Equal(t, quoted(cfg.Config.Cmd), final.cmd)
	assert.Equal(t, cfg.Config.WorkingDir, final.workdir)
	env := map[string]string{}
	for _, kv := range cfg.Config.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	assert.Equal(t, env, final.env)
	var ports []string
	for p := range cfg.Config.ExposedPorts {
		ports = append(ports, strings.TrimSuffix(p, "/tcp"))
	}
	assert.ElementsMatch(t, ports, final.exposes)
	for _, dst := range final.copies {
		_, ok := files[strings.TrimSuffix(dst, "/")]
		assert.True(t, ok || dst == "/", "%s is in make image's image too", dst)
	}
	for _, dst := range final.ownedCopies {
		assert.Equal(t, 10001, files[dst].header.Uid, dst)
	}
}
