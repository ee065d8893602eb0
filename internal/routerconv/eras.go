package routerconv

var (
	erasA  = [2]Era{EraA, EraA}
	erasAB = [2]Era{EraA, EraB}
	erasAC = [2]Era{EraA, EraC}
	erasBD = [2]Era{EraB, EraD}
	erasCD = [2]Era{EraC, EraD}
	erasD  = [2]Era{EraD, EraD}
)

// keyEras are the eras whose routers send an attribute key, for every key that tells eras
// apart: the router's own keys and the older spellings vsr_attributes renames.
var keyEras = map[string][2]Era{
	"deployment.environment":        erasAC,
	"deployment.environment.name":   erasD,
	"http.status_code":              erasCD,
	"traffic.kind":                  erasD,
	"request.outcome":               erasD,
	"routing.entrypoint":            erasD,
	"routing.recipe":                erasD,
	"routing.algorithm":             erasD,
	"response.streaming":            erasD,
	"response.streaming_complete":   erasD,
	"jailbreak.detected":            erasAC,
	"jailbreak.type":                erasAC,
	"jailbreak.detection_time_ms":   erasAC,
	"pii.detected":                  erasAC,
	"pii.types":                     erasAC,
	"pii.detection_time_ms":         erasAC,
	"security.action":               erasAC,
	"cache.key":                     erasAC,
	"cache.hit":                     erasAC,
	"cache.lookup_time_ms":          erasAC,
	"cache.threshold":               erasAC,
	"category.name":                 erasAC,
	"classifier.type":               erasA,
	"classification.time_ms":        erasA,
	"reasoning.enabled":             erasAB,
	"reasoning.effort":              erasAB,
	"model.reasoning_enabled":       erasCD,
	"model.reasoning_effort":        erasCD,
	"routing.selection_method":      erasD,
	"routing.selection_candidate":   erasD,
	"signal.matched_rules":          erasCD,
	"signal.confidence":             erasCD,
	"signal.latency_ms":             erasCD,
	"signal.confidence_available":   erasD,
	"decision.name":                 erasBD,
	"decision.confidence":           erasCD,
	"decision.matched_rules":        erasCD,
	"decision.strategy":             erasCD,
	"decision.confidence_available": erasD,
	"plugin.type":                   erasBD,
	"plugin.status":                 erasBD,
	"plugin.result":                 erasBD,
	"plugin.decision":               erasCD,
	"plugin.latency_ms":             erasCD,
	"system_prompt.injected":        erasCD,
	"system_prompt.mode":            erasCD,
	"rag.backend":                   erasCD,
	"rag.decision":                  erasCD,
	"rag.similarity_threshold":      erasCD,
	"rag.top_k":                     erasCD,
	"rag.latency_seconds":           erasCD,
	"rag.success":                   erasCD,
	"rag.context_length":            erasCD,
	"rag.similarity_score":          erasCD,
}

// RenameTargets are the canonical keys vsr_attributes also writes from another era's
// spelling: once normalized, they no longer tell which era sent them.
var RenameTargets = map[string]bool{
	"deployment.environment.name": true,
	"reasoning.enabled":           true,
	"reasoning.effort":            true,
}

// KeyEras returns the eras whose routers send key as it is sent. On a span vsr_attributes has
// normalized, the RenameTargets are no evidence.
func KeyEras(key string) ([2]Era, bool) {
	eras, ok := keyEras[key]
	return eras, ok
}

// NarrowEras intersects an era range with another; a zero range is no evidence yet.
func NarrowEras(have, evidence [2]Era) [2]Era {
	if evidence[0] == EraUnknown {
		return have
	}
	if have[0] == EraUnknown {
		return evidence
	}
	return [2]Era{max(have[0], evidence[0]), min(have[1], evidence[1])}
}

// SingleEra is the era a range pins down, or EraUnknown when it is empty, conflicting or
// still spans several eras.
func SingleEra(eras [2]Era) Era {
	if eras[0] == EraUnknown || eras[0] != eras[1] {
		return EraUnknown
	}
	return eras[0]
}
