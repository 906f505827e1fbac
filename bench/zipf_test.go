package bench

import (
	"math"
	"math/rand/v2"
)

// zipfCDF holds the cumulative Zipf (s = 1.1) distribution over zipfTokens
// ranks.
var zipfCDF = func() []float64 {
	cdf := make([]float64, zipfTokens)
	sum := 0.0
	for k := range cdf {
		sum += 1 / math.Pow(float64(k+1), 1.1)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	return cdf
}()

// zipf draws a rank in [0, zipfTokens).
func zipf(r *rand.Rand) int {
	u := r.Float64()
	lo, hi := 0, len(zipfCDF)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if zipfCDF[mid] < u {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
