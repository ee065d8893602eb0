// Command image builds the otelcol-vsr container image without a container engine: one layer,
// from scratch, holding the static binary OCB built, the embedded default config, a passwd entry
// for uid 10001, the Mozilla CA certificates (from golang.org/x/crypto/x509roots, so no network
// and no host file is read) and the state directories owned by that user; written as an OCI
// image layout on disk (go-containerregistry) for crane, skopeo or any OCI tool to push.
//
//	go run . -binary ../../_build/otelcol-vsr -config ../../collector-config.yaml \
//	  -ref ghcr.io/otelcol-vsr/otelcol-vsr:0.1.0 -out ../../_image/otelcol-vsr
//
// With -rootfs DIR it writes the same files into a directory instead: distro/Dockerfile's
// final stage copies them, so both images hold the same tree.
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

const (
	uid = 10001
	// StateDir holds the sending queue, vsr_sampler's decisions, journal and spill.
	stateDir   = "/var/lib/otelcol-vsr"
	binaryPath = "/otelcol-vsr"
	configPath = "/etc/otelcol-vsr/config.yaml"
)

// config is the image's runtime configuration; distro/Dockerfile states the same (the tests
// compare them).
var config = v1.Config{
	User:       fmt.Sprintf("%d:%d", uid, uid),
	Entrypoint: []string{binaryPath},
	Cmd:        []string{"--config", configPath},
	// The embedded default listens on loopback; in a container it must listen on all
	// interfaces, and keep its state where the image made room for it.
	Env: []string{
		"VSR_OTLP_GRPC_ENDPOINT=0.0.0.0:4317",
		"VSR_OTLP_HTTP_ENDPOINT=0.0.0.0:4318",
		"VSR_HEALTH_ENDPOINT=0.0.0.0:13133",
		"VSR_METRICS_HOST=0.0.0.0",
		"VSR_REQUEST_METRICS_ENDPOINT=0.0.0.0:8889",
		"VSR_STORAGE_DIR=" + stateDir + "/queue",
		"VSR_SPILL_DIR=" + stateDir + "/spill",
		"VSR_JOURNAL_DIR=" + stateDir + "/journal",
	},
	ExposedPorts: map[string]struct{}{"4317/tcp": {}, "4318/tcp": {}, "13133/tcp": {}, "8888/tcp": {}, "8889/tcp": {}},
	WorkingDir:   stateDir,
}

// file is one entry of the image's filesystem.
type file struct {
	path     string
	mode     int64
	owner    int
	body     []byte // nil for a directory
	isDir    bool
	fromPath string // read from here when body is nil and it is not a directory
}

func main() {
	binary := flag.String("binary", "../../_build/otelcol-vsr", "the static otelcol-vsr binary (make build)")
	cfg := flag.String("config", "../../collector-config.yaml", "the default config to embed")
	ref := flag.String("ref", "ghcr.io/otelcol-vsr/otelcol-vsr:0.1.0", "the image's name and tag")
	out := flag.String("out", "", "write the image as an OCI layout into this directory")
	rootfs := flag.String("rootfs", "", "write the image's files into this directory instead")
	flag.Parse()
	files, err := filesystem(*binary, *cfg)
	if err == nil {
		switch {
		case *rootfs != "":
			err = writeRootfs(*rootfs, files)
		case *out != "":
			err = writeLayout(*out, *ref, *binary, files)
		default:
			err = errors.New("give -out or -rootfs")
		}
	}
	if err != nil {
		log.Fatal(err)
	}
}

func filesystem(binary, cfg string) ([]file, error) {
	defaultConfig, err := os.ReadFile(cfg)
	if err != nil {
		return nil, err
	}
	var cas bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue // a distrust date a PEM bundle cannot carry: left out
		}
		if err := pem.Encode(&cas, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, err
		}
	}
	dir := func(path string, owner int) file { return file{path: path, mode: 0o755, owner: owner, isDir: true} }
	return []file{
		dir("etc", 0),
		{path: "etc/passwd", mode: 0o644, body: fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\notelcol-vsr:x:%d:%d:otelcol-vsr:%s:/sbin/nologin\n", uid, uid, stateDir)},
		{path: "etc/group", mode: 0o644, body: fmt.Appendf(nil, "root:x:0:\notelcol-vsr:x:%d:\n", uid)},
		{path: "etc/nsswitch.conf", mode: 0o644, body: []byte("hosts: files dns\n")},
		dir("etc/otelcol-vsr", 0),
		{path: strings.TrimPrefix(configPath, "/"), mode: 0o644, body: defaultConfig},
		dir("etc/ssl", 0),
		dir("etc/ssl/certs", 0),
		{path: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: cas.Bytes()},
		{path: strings.TrimPrefix(binaryPath, "/"), mode: 0o755, fromPath: binary},
		{path: "tmp", mode: 0o1777, isDir: true},
		dir("var", 0),
		dir("var/lib", 0),
		dir(strings.TrimPrefix(stateDir, "/"), uid),
		dir(strings.TrimPrefix(stateDir, "/")+"/queue", uid),
		dir(strings.TrimPrefix(stateDir, "/")+"/spill", uid),
		dir(strings.TrimPrefix(stateDir, "/")+"/journal", uid),
	}, nil
}

// epoch is every timestamp in the image, so that the same inputs build the same digest.
var epoch = time.Unix(0, 0).UTC()

func layerTar(files []file) ([]byte, error) {
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.path, Mode: f.mode, Uid: f.owner, Gid: f.owner, ModTime: epoch, Format: tar.FormatPAX}
		body := f.body
		switch {
		case f.isDir:
			h.Typeflag, h.Name = tar.TypeDir, f.path+"/"
		case body == nil:
			var err error
			if body, err = os.ReadFile(f.fromPath); err != nil {
				return nil, err
			}
			fallthrough
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	err := tw.Close()
	return buf.Bytes(), err
}

// architecture is the GOARCH name of the binary's machine.
func architecture(binary string) (string, error) {
	f, err := elf.Open(binary)
	if err != nil {
		return "", fmt.Errorf("%s: %w (the image needs the linux binary)", binary, err)
	}
	defer f.Close()
	arch, ok := map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"}[f.Machine]
	if !ok {
		return "", fmt.Errorf("%s: machine %v", binary, f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return "", fmt.Errorf("%s is dynamically linked; the image has no libc", binary)
		}
	}
	return arch, nil
}

func writeLayout(out, ref, binary string, files []file) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	arch, err := architecture(binary)
	if err != nil {
		return err
	}
	raw, err := layerTar(files)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: epoch}, CreatedBy: "distro/image: otelcol-vsr, its default config, passwd, CA certificates, state directories",
	}}); err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Config = config
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   "otelcol-vsr",
		"org.opencontainers.image.version": tag.TagStr(),
		"org.opencontainers.image.source":  "https://github.com/otelcol-vsr/otelcol-vsr",
	}
	cf.Created = v1.Time{Time: epoch}
	cf.OS, cf.Architecture = "linux", arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	p, err := layout.Write(out, empty.Index)
	if err != nil {
		return err
	}
	err = p.AppendImage(img,
		layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag.TagStr(), "io.otelcol-vsr.image.name": tag.Name()}),
		layout.WithPlatform(v1.Platform{OS: "linux", Architecture: arch}))
	if err != nil {
		return err
	}
	d, _ := img.Digest()
	fmt.Printf("%s (%s, linux/%s) in %s\n", tag.Name(), d, arch, out)
	return nil
}

// writeRootfs writes the files as the image holds them (owners included: run it as root).
func writeRootfs(dir string, files []file) error {
	for _, f := range files {
		path := filepath.Join(dir, f.path)
		if f.isDir {
			if err := os.MkdirAll(path, os.FileMode(f.mode&0o777)); err != nil {
				return err
			}
		} else {
			body := f.body
			if body == nil {
				var err error
				if body, err = os.ReadFile(f.fromPath); err != nil {
					return err
				}
			}
			if err := os.WriteFile(path, body, os.FileMode(f.mode&0o777)); err != nil {
				return err
			}
		}
		if err := os.Chmod(path, os.FileMode(f.mode&0o777)|map[bool]os.FileMode{true: os.ModeSticky}[f.mode&0o1000 != 0]); err != nil {
			return err
		}
		if err := os.Lchown(path, f.owner, f.owner); err != nil {
			return err
		}
	}
	return nil
}
