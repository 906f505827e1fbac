package introspection

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// manyMembers returns an answer of at most size bytes with as many members
// as fit, and how many that is.
func manyMembers(size int) (body []byte, members int) {
	body = append(body, `{"active":true`...)
	members = 1
	for i := 0; ; i++ {
		// Upper case: no name of a member that decoding checks.
		m := `,"` + strings.ToUpper(strconv.FormatInt(int64(i), 36)) + `":0`
		if len(body)+len(m)+1 > size {
			break
		}
		body = append(body, m...)
		members++
	}
	return append(body, '}'), members
}

// bigObject returns a JSON object with n members named m0, m1, ...
func bigObject(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"m%d":%d`, i, i)
	}
	b.WriteString("}")
	return b.String()
}

// TestDuplicateMembersRefusedAtEveryDepth checks that an answer with a
// member named twice in any one object, at any depth, inside arrays too,
// and with names compared as decoded, is refused, and that the same name in
// different objects is not a duplicate.
func TestDuplicateMembersRefusedAtEveryDepth(t *testing.T) {
	big := bigObject(100)
	const accepted = "(accepted)" // no name in any object is repeated
	tests := []struct {
		name string
		body string
		dup  string // the duplicate name
	}{
		{"top level", `{"active":false,"active":true}`, "active"},
		{"top level after a nested object", `{"a":{"b":1},"active":true,"a":2}`, "a"},
		{"nested object", `{"active":true,"x":{"a":1,"a":2}}`, "a"},
		{"object in an array", `{"active":true,"x":[{"a":1},{"b":1,"b":2}]}`, "b"},
		{"deep", `{"active":true,"x":[[[{"y":{"z":1,"z":1}}]]]}`, "z"},
		{"deeper than the frame buffer", `{"active":true,"x":` + strings.Repeat(`[{"a":`, 20) + `{"k":1,"k":2}` + strings.Repeat(`}]`, 20) + `}`, "k"},
		{"after a nested object closes", `{"active":true,"x":{"k":{"k":1},"k":2}}`, "k"},
		{"escaped against plain", `{"active":true,"x":{"a":1,"\u0061":2}}`, "a"},
		{"escaped against escaped", `{"active":true,"x":{"\u0061":1,"\u0061":2}}`, "a"},
		{"surrogate pair against UTF-8", `{"active":true,"x":{"😀":1,"\ud83d\ude00":2}}`, "😀"},
		{"escaped solidus", `{"active":true,"x":{"/":1,"\/":2}}`, "/"},
		{"escaped quote", `{"active":true,"x":{"a\"":1,"a\u0022":2}}`, `a"`},
		{"lone surrogates decode alike", `{"active":true,"x":{"\ud800":1,"\udc00":2}}`, "\ufffd"},
		{"empty name", `{"active":true,"x":{"":1,"":2}}`, ""},
		{"large object", `{"active":true,"x":` + strings.TrimSuffix(big, "}") + `,"m0":0}}`, "m0"},
		{"large object, last name", `{"active":true,"x":` + strings.TrimSuffix(big, "}") + `,"m99":0}}`, "m99"},
		{"top level of a large answer", strings.TrimSuffix(big, "}") + `,"active":true,"m50":0}`, "m50"},
		{"seventeenth name repeats the first", `{"active":true,"x":` + strings.TrimSuffix(bigObject(16), "}") + `,"m0":0}}`, "m0"},

		{"same name in sibling objects", `{"active":true,"x":[{"a":1},{"a":1}],"y":{"a":1}}`, accepted},
		{"same name at different depths", `{"active":true,"x":{"active":true,"x":{"x":1}}}`, accepted},
		{"name as a string value", `{"active":true,"x":"active","y":["active"]}`, accepted},
		{"names that differ once decoded", `{"active":true,"x":{"a\u0062":1,"ac":2,"a\\":3,"a":4}}`, accepted},
		{"escaped quote in a value", `{"active":true,"s":"\"active\":","t":"\\","active2":1}`, accepted},
		{"empty names in two objects", `{"active":true,"":1,"x":{"":1}}`, accepted},
		{"large objects nested", `{"active":true,"x":` + strings.TrimSuffix(big, "}") + `,"y":` + big + `}}`, accepted},
		{"whitespace everywhere", " {\n\t\"active\" : true ,\r\n \"x\" : { \"a\" : 1 , \"b\" : [ 1 , { \"a\" : 2 } ] } } ", accepted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := decodeAnswer([]byte(tc.body))
			if tc.dup == accepted {
				require.NoError(t, err)
				assert.NotNil(t, a)
				return
			}
			require.Error(t, err)
			assert.Nil(t, a)
			assert.Equal(t, "answer has member "+memberName(tc.dup)+" more than once", err.Error())
			assert.Equal(t, tc.dup, scanJSON([]byte(tc.body)).duplicate, "the name as decoded")
		})
	}
}

// TestScanCountsValues checks the count of JSON values the scan makes for
// the per-entry bound of the built-in cache.
func TestScanCountsValues(t *testing.T) {
	tests := []struct {
		body   string
		values int
	}{
		{`{}`, 1},
		{`{"active":true}`, 2},
		{`{"active":true,"x":[1,"a",{"b":null}],"y":{},"z":[]}`, 9},
		{`{"active":true,"s":"{[\"]}","n":-1.5e3,"f":false}`, 5},
		{` { "a" : [ [ ] , [ 0 ] ] } `, 5},
	}
	for _, tc := range tests {
		t.Run(tc.body, func(t *testing.T) {
			st := scanJSON([]byte(tc.body))
			require.False(t, st.dup)
			assert.Equal(t, tc.values, st.values)
		})
	}
}

// TestDuplicateScanIsLinear checks that the scan compares each member name
// with at most smallObject others, however many members an object has, so
// that its cost grows with the size of the answer and not with its square.
func TestDuplicateScanIsLinear(t *testing.T) {
	body, members := manyMembers(maxBodySize)
	require.Greater(t, members, 100_000)
	var wide strings.Builder
	wide.WriteString(`{"active":true,"x":[`)
	for i := range 5000 {
		if i > 0 {
			wide.WriteString(",")
		}
		wide.WriteString(bigObject(smallObject))
	}
	wide.WriteString("]}")
	tests := []struct {
		name    string
		body    []byte
		members int
	}{
		{"one object of 1 MiB", body, members},
		{"many objects of smallObject members", []byte(wide.String()), 1 + 5000*smallObject + 1},
		{"an object past smallObject", []byte(`{"active":true,"x":` + bigObject(1000) + `}`), 1002},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := scanJSON(tc.body)
			require.False(t, st.dup)
			t.Logf("%d members, %d comparisons", tc.members, st.compared)
			assert.LessOrEqual(t, st.compared, smallObject*tc.members)
			a, err := decodeAnswer(tc.body)
			require.NoError(t, err)
			assert.True(t, a.active)
		})
	}
}

// TestNamesDecodedAsEncodingJSONDoes checks that member names are compared
// as encoding/json decodes them, the names Go's map would merge.
func TestNamesDecodedAsEncodingJSONDoes(t *testing.T) {
	for _, quoted := range []string{
		`"plain"`, `"\u0061"`, `"\u00e9\u00E9"`, `"\"\\\/\b\f\n\r\t"`, `"\ud83d\ude00"`, `"\ud83d"`,
		`"\ude00"`, `"\ud83d\u0041"`, `"\ud83d\ud83d\ude00"`, `"\udbff\udfff"`, `"a\u0000b"`,
		`"x\\u0041"`, `"é\u00e9😀"`, `"\uFFFD"`, `"\ud800\\"`,
		`"\u00aA\u00Aa"`, `"\u0909"`, // the ends of the ranges of hex digits
	} {
		t.Run(quoted, func(t *testing.T) {
			var want string
			require.NoError(t, json.Unmarshal([]byte(quoted), &want))
			got := appendUnquoted(nil, []byte(quoted[1:len(quoted)-1]))
			assert.Equal(t, want, string(got))
		})
	}
}

// TestScanCountsEveryComparison checks the comparison count that
// TestDuplicateScanIsLinear bounds, so that a count that missed some could
// not pass for a linear scan: each name is compared with each earlier name
// of its object until the object has more than smallObject names, and
// after that costs one set lookup.
func TestScanCountsEveryComparison(t *testing.T) {
	tri := func(n int) int { return n * (n - 1) / 2 } // comparisons among n names
	tests := []struct {
		name     string
		body     string
		compared int
	}{
		{"empty object", `{}`, 0},
		{"one member", `{"a":1}`, 0},
		{"three members", `{"a":1,"b":2,"c":3}`, tri(3)},
		{"nested objects count apart", `{"a":{"b":1,"c":2},"d":[{"e":1,"f":2}]}`, 1 + 1 + 1},
		{"smallObject names", bigObject(smallObject), tri(smallObject)},
		{"one past smallObject", bigObject(smallObject + 1), tri(smallObject + 1)},
		{"two past smallObject", bigObject(smallObject + 2), tri(smallObject+1) + 1},
		{"a hundred names", bigObject(100), tri(smallObject+1) + 100 - (smallObject + 1)},
		// The names of the objects around it do not count toward an
		// object's smallObject.
		{"nested after smallObject/2 names", `{"o0":0,"o1":1,"o2":2,"o3":3,"o4":4,"o5":5,"o6":6,"o7":7,"x":` + bigObject(smallObject/2+1) + `}`,
			tri(smallObject/2+1) + tri(smallObject/2+1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := scanJSON([]byte(tc.body))
			require.False(t, st.dup)
			assert.Equal(t, tc.compared, st.compared)
		})
	}
}
