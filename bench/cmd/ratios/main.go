// Command ratios reads `go test -bench` output on stdin and prints a
// markdown table of medians per workload and contender, with ratios to the
// bare-client baseline and, for cached contenders, to the map+copy limit.
package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

type key struct{ workload, contender string }

func main() {
	samples := map[key]map[string][]float64{}
	var order []key
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if i := strings.LastIndex(name, "-"); i > 0 {
			name = name[:i]
		}
		workload, contender, ok := strings.Cut(name, "/")
		if !ok {
			continue
		}
		k := key{workload, contender}
		if samples[k] == nil {
			samples[k] = map[string][]float64{}
			order = append(order, k)
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				samples[k][f[i+1]] = append(samples[k][f[i+1]], v)
			}
		}
	}
	med := func(k key, unit string) (float64, bool) {
		s := slices.Clone(samples[k][unit])
		if len(s) == 0 {
			return 0, false
		}
		slices.Sort(s)
		return s[len(s)/2], true
	}
	fmt.Println("| workload | contender | ns/op | allocs/op | upstream per 1k | vs baseline (time) | vs map+copy (time, allocs) | ops/s |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, k := range order {
		ns, _ := med(k, "ns/op")
		allocs, _ := med(k, "allocs/op")
		up, _ := med(k, "upstream/1k")
		vsBase := "-"
		if b, ok := med(key{k.workload, "baseline"}, "ns/op"); ok && k.contender != "baseline" {
			vsBase = fmt.Sprintf("%.2fx", ns/b)
		}
		vsMap := "-"
		if m, ok := med(key{k.workload, "map+copy"}, "ns/op"); ok && strings.HasSuffix(k.contender, "cached") {
			ma, _ := med(key{k.workload, "map+copy"}, "allocs/op")
			vsMap = fmt.Sprintf("%.2fx, %+.0f", ns/m, allocs-ma)
		}
		fmt.Printf("| %s | %s | %.0f | %.0f | %.2f | %s | %s | %.0f |\n", k.workload, k.contender, ns, allocs, up, vsBase, vsMap, 1e9/ns)
	}
}
