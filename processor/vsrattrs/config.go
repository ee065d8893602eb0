package vsrattrs

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/config/configopaque"

	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/normalize"
	"github.com/otelcol-vsr/otelcol-vsr/processor/vsrattrs/internal/scan"
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

// RedactionConfig says what is redacted, and how: families of keys (whole values hashed,
// removed or sanitized) and the value scanner (findings replaced inside kept strings). Where
// it overlaps with contrib's redaction processor, the keys are named as there.
type RedactionConfig struct {
	// HashKey keys the HMAC of hashed values (contrib: hmac_key). Without it, values set to
	// hash are removed.
	HashKey configopaque.String `mapstructure:"hash_key"`
	// HashFunction is hmac-sha256 or hmac-sha512; contrib's unkeyed md5, sha1 and sha3 are
	// refused.
	HashFunction string `mapstructure:"hash_function"`
	// Prompts, Identifiers and Credentials are the actions of the content, identifier and
	// credential families (cache.key and other prompt text; user, session IDs…; headers,
	// command lines…): hash, drop or keep.
	Prompts     string `mapstructure:"prompts"`
	Identifiers string `mapstructure:"identifiers"`
	Credentials string `mapstructure:"credentials"`
	// Families sets a family's action by its ID (the README's privacy table): hash, drop,
	// keep, and for URL families sanitize.
	Families map[string]string `mapstructure:"families"`
	// IgnoredKeys pass untouched: no family, no scanner (contrib: ignored_keys).
	IgnoredKeys []string `mapstructure:"ignored_keys"`
	// BlockedKeyPatterns are regular expressions: a key matching one is treated as content
	// (contrib: blocked_key_patterns).
	BlockedKeyPatterns []string `mapstructure:"blocked_key_patterns"`
	// BlockedValues are regular expressions: matches inside kept strings are replaced
	// (contrib: blocked_values).
	BlockedValues []string           `mapstructure:"blocked_values"`
	ValueScanner  ValueScannerConfig `mapstructure:"value_scanner"`
	// Summary is what each span records of its redactions: silent, info (counts) or debug
	// (counts and keys), as contrib's summary.
	Summary string `mapstructure:"summary"`
	// AllowListOnly removes every attribute of a router span outside the schema and AllowedKeys.
	AllowListOnly bool     `mapstructure:"allow_list_only"`
	AllowedKeys   []string `mapstructure:"allowed_keys"`
	_             struct{}
}

// ValueScannerConfig is the scanner of kept strings.
type ValueScannerConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// Kinds limits the scanner to these kinds; empty is all of them.
	Kinds []string `mapstructure:"kinds"`
	_     struct{}
}

var (
	modes       = map[string]normalize.Mode{"fix": normalize.ModeFix, "report": normalize.ModeReport, "strict": normalize.ModeStrict}
	queryModes  = map[string]normalize.QueryMode{"redact_values": normalize.QueryRedactValues, "keep": normalize.QueryKeep, "drop": normalize.QueryDrop}
	actions     = map[string]normalize.Action{"hash": normalize.ActionHash, "drop": normalize.ActionDrop, "keep": normalize.ActionKeep}
	urlActions  = map[string]normalize.Action{"hash": normalize.ActionHash, "drop": normalize.ActionDrop, "keep": normalize.ActionKeep, "sanitize": normalize.ActionSanitize}
	summaries   = map[string]normalize.Summary{"silent": normalize.SummarySilent, "info": normalize.SummaryInfo, "debug": normalize.SummaryDebug}
	hashFuncs   = map[string]normalize.HashFunction{"hmac-sha256": normalize.HashHMACSHA256, "hmac-sha512": normalize.HashHMACSHA512}
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
		oneOf("redaction.credentials", cfg.Redaction.Credentials, actions),
		oneOf("redaction.summary", cfg.Redaction.Summary, summaries),
		cfg.Redaction.validateHashFunction(),
		cfg.Redaction.validateFamilies(),
	}
	if _, err := compilePatterns("redaction.blocked_key_patterns", cfg.Redaction.BlockedKeyPatterns); err != nil {
		errs = append(errs, err)
	}
	if _, err := compilePatterns("redaction.blocked_values", cfg.Redaction.BlockedValues); err != nil {
		errs = append(errs, err)
	}
	if _, err := scan.ParseKinds(cfg.Redaction.ValueScanner.Kinds); err != nil {
		errs = append(errs, fmt.Errorf("redaction.value_scanner.kinds%w", err))
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

// unkeyedHashes are contrib's hash functions this processor refuses.
var unkeyedHashes = map[string]bool{"md5": true, "sha1": true, "sha3": true}

func (r *RedactionConfig) validateHashFunction() error {
	if unkeyedHashes[r.HashFunction] {
		return fmt.Errorf("redaction.hash_function: %q is not keyed: a user ID, an e-mail address or a short prompt is "+
			"found again by hashing every candidate; use hmac-sha256 or hmac-sha512 with hash_key", r.HashFunction)
	}
	return oneOf("redaction.hash_function", r.HashFunction, hashFuncs)
}

// validateFamilies names each unknown family and each action a family cannot take.
func (r *RedactionConfig) validateFamilies() error {
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(r.Families)) {
		f, ok := familyByID(id)
		if !ok {
			errs = append(errs, fmt.Errorf("redaction.families.%s: no such family; families are %v", id, familyIDs()))
			continue
		}
		allowed := actions
		if f.Class == normalize.ClassURL {
			allowed = urlActions
		}
		errs = append(errs, oneOf("redaction.families."+id, r.Families[id], allowed))
	}
	return errors.Join(errs...)
}

func familyByID(id string) (normalize.Family, bool) {
	for _, f := range normalize.Families {
		if f.ID == id {
			return f, true
		}
	}
	return normalize.Family{}, false
}

func familyIDs() []string {
	var ids []string
	for _, f := range normalize.Families {
		ids = append(ids, f.ID)
	}
	return ids
}

// compilePatterns compiles an operator's regular expressions into one alternation (RE2:
// linear in the input); nil when there are none. A pattern that matches the empty string
// would match everywhere.
func compilePatterns(key string, patterns []string) (*regexp.Regexp, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	var errs []error
	for i, p := range patterns {
		re, err := regexp.Compile(p)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s[%d]: %w", key, i, err))
		case re.MatchString(""):
			errs = append(errs, fmt.Errorf("%s[%d]: %q matches the empty string", key, i, p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return regexp.MustCompile("(?:" + strings.Join(patterns, ")|(?:") + ")"), nil
}

// options turns a validated Config into the normaliser's options.
func (cfg *Config) options() normalize.Options {
	r := &cfg.Redaction
	families := map[string]normalize.Action{}
	for id, a := range r.Families {
		families[id] = urlActions[a]
	}
	kinds := scan.Set(0)
	if r.ValueScanner.Enabled {
		kinds = scan.All
		if len(r.ValueScanner.Kinds) > 0 {
			kinds, _ = scan.ParseKinds(r.ValueScanner.Kinds)
		}
	}
	blockedKeys, _ := compilePatterns("", r.BlockedKeyPatterns)
	blockedValues, _ := compilePatterns("", r.BlockedValues)
	return normalize.Options{
		Mode:             modes[cfg.Mode],
		ServiceNames:     cfg.ServiceNames,
		KeepLegacyKeys:   cfg.KeepLegacyKeys,
		URLQuery:         queryModes[cfg.URLQuery],
		MaxValueBytes:    cfg.MaxValueBytes,
		MaxIssuesPerSpan: cfg.MaxIssuesPerSpan,
		HashKey:          []byte(r.HashKey),
		HashFunction:     hashFuncs[r.HashFunction],
		Prompts:          actions[r.Prompts],
		Identifiers:      actions[r.Identifiers],
		Credentials:      actions[r.Credentials],
		Families:         families,
		IgnoredKeys:      r.IgnoredKeys,
		BlockedKeys:      blockedKeys,
		BlockedValues:    blockedValues,
		ScanKinds:        kinds,
		Summary:          summaries[r.Summary],
		AllowListOnly:    r.AllowListOnly,
		AllowedKeys:      r.AllowedKeys,
	}
}
