package pyjson

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecodeAndMarshalFields(t *testing.T) {
	type cfg struct {
		Class string  `json:"_class_name,omitempty"`
		N     int     `json:"n"`
		Eps   float64 `json:"eps"`
		Mid   string  `json:"mid,omitempty"`
		List  []Float `json:"list,omitempty"`
	}
	c := cfg{N: 4, Eps: 1e-5, Mid: "default"}
	require.NoError(t, DecodeFields([]byte(`{"n": 8, "mid": null, "list": [1, -Infinity], "unknown": 3}`), &c, DescribeType))
	require.Equal(t, 8, c.N)
	require.Equal(t, 1e-5, c.Eps, "a missing key keeps its default")
	require.Equal(t, "", c.Mid, "null means none")
	require.Len(t, c.List, 2)
	err := DecodeFields([]byte(`{"n": "eight"}`), &c, DescribeType)
	require.ErrorContains(t, err, `key "n": "eight": want an integer`)
	require.ErrorContains(t, DecodeFields([]byte(`[1]`), &c, DescribeType), "not a JSON object")

	out, err := MarshalFields(cfg{N: 1, Eps: 0.5}, "test config", true)
	require.NoError(t, err)
	require.Equal(t, `{"n":1,"eps":0.5,"mid":null,"list":null}`, string(out))
	out, err = MarshalFields(cfg{N: 1, List: []Float{}}, "test config", false)
	require.NoError(t, err)
	require.Equal(t, `{"n":1,"eps":0,"mid":null,"list":[]}`, string(out))
}
