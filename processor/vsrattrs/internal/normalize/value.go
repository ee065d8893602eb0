package normalize

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-vsr/otelcol-vsr/internal/routerconv"
)

// value is a normalised attribute value of one of the schema's types.
type value struct {
	typ Type
	s   string
	i   int64
	d   float64
	b   bool
	ss  []string
}

func (v value) equal(o value) bool {
	return v.typ == o.typ && v.s == o.s && v.i == o.i && v.b == o.b && slices.Equal(v.ss, o.ss) &&
		(v.d == o.d || (math.IsNaN(v.d) && math.IsNaN(o.d)))
}

func (v value) put(m pcommon.Map, key string) {
	switch v.typ {
	case TypeString:
		m.PutStr(key, v.s)
	case TypeBool:
		m.PutBool(key, v.b)
	case TypeInt:
		m.PutInt(key, v.i)
	case TypeDouble:
		m.PutDouble(key, v.d)
	case TypeStringSlice:
		s := m.PutEmptySlice(key)
		s.EnsureCapacity(len(v.ss))
		for _, e := range v.ss {
			s.AppendEmpty().SetStr(e)
		}
	}
}

// sameAsWire reports whether writing v would leave pv as it is.
func (v value) sameAsWire(pv pcommon.Value) bool {
	switch v.typ {
	case TypeString:
		return pv.Type() == pcommon.ValueTypeStr && pv.Str() == v.s
	case TypeBool:
		return pv.Type() == pcommon.ValueTypeBool && pv.Bool() == v.b
	case TypeInt:
		return pv.Type() == pcommon.ValueTypeInt && pv.Int() == v.i
	case TypeDouble:
		return pv.Type() == pcommon.ValueTypeDouble && pv.Double() == v.d
	case TypeStringSlice:
		if pv.Type() != pcommon.ValueTypeSlice || pv.Slice().Len() != len(v.ss) {
			return false
		}
		for i, e := range pv.Slice().All() {
			if e.Type() != pcommon.ValueTypeStr || e.Str() != v.ss[i] {
				return false
			}
		}
		return true
	}
	return false
}

// issueSet is a bit set of Issues found on one value.
type issueSet uint32

func (s *issueSet) add(i Issue)           { *s |= 1 << i }
func (s issueSet) has(i Issue) bool       { return s&(1<<i) != 0 }
func (s issueSet) hasAny(o issueSet) bool { return s&o != 0 }

// strictRejects are the fixes strict mode refuses to make: it drops the value instead.
var strictRejects = issueSet(1<<IssueCoerced | 1<<IssueUnknownValue | 1<<IssueTruncated | 1<<IssueInvalidUTF8)

// coerce reads pv as type t. An Int is also read from a whole double or a decimal string; a
// duration in ms may be rounded from a fractional one.
func coerce(t Type, duration bool, pv pcommon.Value, issues *issueSet) (value, bool) {
	v := value{typ: t}
	wire := pv.Type()
	switch t {
	case TypeString:
		switch wire {
		case pcommon.ValueTypeStr:
			v.s = pv.Str()
			return v, true
		case pcommon.ValueTypeInt, pcommon.ValueTypeDouble, pcommon.ValueTypeBool:
			v.s = pv.AsString()
			issues.add(IssueCoerced)
			return v, true
		}
	case TypeBool:
		b, ok := routerconv.AsBool(pv)
		if wire != pcommon.ValueTypeBool {
			issues.add(IssueCoerced)
		}
		v.b = b
		return v, ok
	case TypeInt:
		if wire == pcommon.ValueTypeInt {
			v.i = pv.Int()
			return v, true
		}
		issues.add(IssueCoerced)
		if n, ok := routerconv.AsInt(pv); ok || !duration {
			v.i = n
			return v, ok
		}
		// A duration in ms may be rounded from a fractional one.
		d, ok := routerconv.AsFloat(pv)
		if !ok || math.IsNaN(d) || math.IsInf(d, 0) || math.Abs(d) >= 1<<63 {
			return v, false
		}
		v.i = int64(math.Round(d))
		return v, true
	case TypeDouble:
		d, ok := routerconv.AsFloat(pv)
		if wire != pcommon.ValueTypeDouble {
			issues.add(IssueCoerced)
		}
		v.d = d
		return v, ok
	case TypeStringSlice:
		switch wire {
		case pcommon.ValueTypeSlice:
			v.ss = make([]string, 0, pv.Slice().Len())
			for _, e := range pv.Slice().All() {
				if e.Type() != pcommon.ValueTypeStr {
					issues.add(IssueCoerced)
				}
				v.ss = append(v.ss, e.AsString())
			}
			return v, true
		case pcommon.ValueTypeStr:
			// Era A joins lists with commas: a format to convert, not a mistake.
			for part := range strings.SplitSeq(pv.Str(), ",") {
				if part = strings.TrimSpace(part); part != "" {
					v.ss = append(v.ss, part)
				}
			}
			issues.add(IssueConverted)
			return v, true
		case pcommon.ValueTypeInt, pcommon.ValueTypeDouble, pcommon.ValueTypeBool:
			v.ss = []string{pv.AsString()}
			issues.add(IssueCoerced)
			return v, true
		}
	}
	return v, false
}

// roundFloat32 undoes the widening of a float32 to float64: 0.800000011920929 → 0.8.
func roundFloat32(d float64) float64 {
	if f := float32(d); float64(f) == d {
		if r, err := strconv.ParseFloat(strconv.FormatFloat(d, 'g', -1, 32), 64); err == nil {
			return r
		}
	}
	return d
}

func foldCase(s string, c Case) string {
	switch c {
	case CaseLower:
		return strings.ToLower(s)
	case CaseUpper:
		return strings.ToUpper(s)
	}
	return s
}

// sanitizeString makes s valid UTF-8 and at most maxBytes long.
func sanitizeString(s string, maxBytes int, issues *issueSet) string {
	return truncate(validUTF8(s, issues), maxBytes, issues)
}

func validUTF8(s string, issues *issueSet) string {
	if utf8.ValidString(s) {
		return s
	}
	issues.add(IssueInvalidUTF8)
	return strings.ToValidUTF8(s, "\uFFFD")
}

// truncate cuts s to at most maxBytes on a rune boundary; 0 means no bound.
func truncate(s string, maxBytes int, issues *issueSet) string {
	if maxBytes <= 0 || len(s) <= maxBytes {
		return s
	}
	cut := maxBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	issues.add(IssueTruncated)
	return s[:cut]
}

// splitQuery separates a raw path into path and query; a fragment, which a server never
// receives from a browser, is neither.
func splitQuery(raw string) (path, query string) {
	raw, _, _ = strings.Cut(raw, "#")
	path, query, _ = strings.Cut(raw, "?")
	return path, query
}
