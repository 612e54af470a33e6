package kong

import (
	"reflect"
	"testing"
)

// An element that starts with the bytes of the previous load's element at
// its index is taken without being scanned: the split must be the one a
// scan gives, whatever follows those bytes.
func TestSplitWithPreviousElementsAgreesWithScan(t *testing.T) {
	prev := &declCache{seq: map[string][]*cachedElement{"services": {
		{key: `{"name":"a","host":"h"}`},
		{key: `{"name":"b"}`},
		{key: `"not an object"`},
	}}}
	docs := []string{
		`{"_format_version":"3.0","services":[{"name":"a","host":"h"},{"name":"b"}]}`,
		`{"_format_version":"3.0","services":[{"name":"a","host":"h"} , {"name":"b"} ]}`,
		`{"services":[{"name":"b"},{"name":"a","host":"h"}]}`,
		`{"services":[{"name":"a","host":"h"}{"name":"b"}]}`,
		`{"services":[{"name":"a","host":"h"}x,{"name":"b"}]}`,
		`{"services":[{"name":"a","host":"h"},{"name":"b"},"not an object"]}`,
		`{"services":[{"name":"a","host":"h"},{"name":"b"},"not an object" ]}`,
		`{"services":[{"name":"a","host":"h"},{"name":"bb"}]}`,
		`{"services":[{"name":"a","host":"h"},{"name":"b"}`,
		`{"services":[{"name":"a","host":"h"`,
		`{"services":[]}`,
	}
	for _, doc := range docs {
		want, wantOK := splitDocument([]byte(doc), nil)
		got, gotOK := splitDocument([]byte(doc), prev)
		if gotOK != wantOK || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: split with previous elements %v %+v, scanned %v %+v", doc, gotOK, got, wantOK, want)
		}
	}
}
