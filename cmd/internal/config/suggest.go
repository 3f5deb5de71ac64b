package config

import "fmt"

// suggest returns ` (did you mean "x"?)` for the candidate closest to s when it is close
// enough to be a likely typo, or "".
func suggest(s string, candidates []string) string {
	best, bestDist := "", 3 // at most two edits
	for _, c := range candidates {
		if d := editDistance(s, c); d < bestDist && d < len(c) {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, counted in bytes: names are
// ASCII.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
