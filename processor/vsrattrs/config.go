package vsrattrs

import (
	"errors"
	"fmt"
	"maps"
	"slices"

	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/normalize"
)

// Config is the vsr_attributes configuration. The defaults work for every router era.
type Config struct {
	// Mode is fix (repair and normalize), report (annotate only) or strict (drop invalid values).
	Mode string `mapstructure:"mode"`
	// ServiceNames are the service.name values of router deployments.
	ServiceNames []string `mapstructure:"service_names"`
	// KeepLegacyKeys keeps the router's old key next to the canonical one.
	KeepLegacyKeys bool `mapstructure:"keep_legacy_keys"`
	// URLQuery is what happens to a query string split off http.path: redact_values, keep or drop.
	URLQuery string `mapstructure:"url_query"`
	// MaxValueBytes bounds every string value on router spans; 0 disables the bound.
	MaxValueBytes int `mapstructure:"max_value_bytes"`
	// MaxIssuesPerSpan bounds the vsr.normalize.issues list.
	MaxIssuesPerSpan int             `mapstructure:"max_issues_per_span"`
	Redaction        RedactionConfig `mapstructure:"redaction"`
	_                struct{}
}

// RedactionConfig says what happens to prompts and identifiers on router spans.
type RedactionConfig struct {
	// HashKey keys the HMAC of hashed values. Without it, values set to hash are removed.
	HashKey configopaque.String `mapstructure:"hash_key"`
	// Prompts (cache.key and other prompt text): hash, drop or keep.
	Prompts string `mapstructure:"prompts"`
	// Identifiers (user.id, session.id, enduser.id): hash, drop or keep.
	Identifiers string `mapstructure:"identifiers"`
	// AllowListOnly removes every attribute of a router span outside the schema and AllowedKeys.
	AllowListOnly bool     `mapstructure:"allow_list_only"`
	AllowedKeys   []string `mapstructure:"allowed_keys"`
	_             struct{}
}

var (
	modes       = map[string]normalize.Mode{"fix": normalize.ModeFix, "report": normalize.ModeReport, "strict": normalize.ModeStrict}
	queryModes  = map[string]normalize.QueryMode{"redact_values": normalize.QueryRedactValues, "keep": normalize.QueryKeep, "drop": normalize.QueryDrop}
	actions     = map[string]normalize.Action{"hash": normalize.ActionHash, "drop": normalize.ActionDrop, "keep": normalize.ActionKeep}
	maxIssueCap = 64
	// minHashKeyBytes keeps a configured key from being guessable.
	minHashKeyBytes = 16
)

func oneOf[T any](key, value string, allowed map[string]T) error {
	if _, ok := allowed[value]; ok {
		return nil
	}
	return fmt.Errorf("%s: %q is not one of %v", key, value, slices.Sorted(maps.Keys(allowed)))
}

// Validate checks the configuration; each error names its key.
func (cfg *Config) Validate() error {
	errs := []error{
		oneOf("mode", cfg.Mode, modes),
		oneOf("url_query", cfg.URLQuery, queryModes),
		oneOf("redaction.prompts", cfg.Redaction.Prompts, actions),
		oneOf("redaction.identifiers", cfg.Redaction.Identifiers, actions),
	}
	if len(cfg.ServiceNames) == 0 || slices.Contains(cfg.ServiceNames, "") {
		errs = append(errs, errors.New("service_names: must list at least one non-empty service name"))
	}
	if cfg.MaxValueBytes < 0 {
		errs = append(errs, fmt.Errorf("max_value_bytes: must not be negative, got %d", cfg.MaxValueBytes))
	}
	if cfg.MaxIssuesPerSpan < 1 || cfg.MaxIssuesPerSpan > maxIssueCap {
		errs = append(errs, fmt.Errorf("max_issues_per_span: must be between 1 and %d, got %d", maxIssueCap, cfg.MaxIssuesPerSpan))
	}
	if n := len(cfg.Redaction.HashKey); n > 0 && n < minHashKeyBytes {
		errs = append(errs, fmt.Errorf("redaction.hash_key: must be at least %d bytes, got %d", minHashKeyBytes, n))
	}
	if len(cfg.Redaction.AllowedKeys) > 0 && !cfg.Redaction.AllowListOnly {
		errs = append(errs, errors.New("redaction.allowed_keys: only used with redaction.allow_list_only: true"))
	}
	return errors.Join(errs...)
}

// options turns a validated Config into the normaliser's options.
func (cfg *Config) options() normalize.Options {
	return normalize.Options{
		Mode:             modes[cfg.Mode],
		ServiceNames:     cfg.ServiceNames,
		KeepLegacyKeys:   cfg.KeepLegacyKeys,
		URLQuery:         queryModes[cfg.URLQuery],
		MaxValueBytes:    cfg.MaxValueBytes,
		MaxIssuesPerSpan: cfg.MaxIssuesPerSpan,
		HashKey:          []byte(cfg.Redaction.HashKey),
		Prompts:          actions[cfg.Redaction.Prompts],
		Identifiers:      actions[cfg.Redaction.Identifiers],
		AllowListOnly:    cfg.Redaction.AllowListOnly,
		AllowedKeys:      cfg.Redaction.AllowedKeys,
	}
}
