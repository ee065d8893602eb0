//go:build tools

// Package tool pins the Helm release the distribution tests render the official chart with
// (see ../install.sh): a module of its own, so Helm's Kubernetes client libraries stay out of
// the distribution's build.
package tool

import _ "helm.sh/helm/v3/cmd/helm"
