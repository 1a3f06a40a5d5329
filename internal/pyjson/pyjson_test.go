package pyjson

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUnmarshalNonFinite(t *testing.T) {
	var v struct {
		A Float   `json:"a"`
		B Float   `json:"b"`
		C Float   `json:"c"`
		D Float   `json:"d"`
		S string  `json:"s"`
		L []Float `json:"l"`
	}
	in := `{"a": -Infinity, "b": Infinity, "c": NaN, "d": 1.5e-3, "s": "NaN and \"Infinity\"", "l": [1, -Infinity]}`
	require.NoError(t, Unmarshal([]byte(in), &v))
	require.True(t, math.IsInf(float64(v.A), -1))
	require.True(t, math.IsInf(float64(v.B), 1))
	require.True(t, math.IsNaN(float64(v.C)))
	require.Equal(t, Float(1.5e-3), v.D)
	require.Equal(t, `NaN and "Infinity"`, v.S, "words inside strings are left alone")
	require.True(t, math.IsInf(float64(v.L[1]), -1))

	b, err := json.Marshal(struct{ X Float }{Float(math.Inf(-1))})
	require.NoError(t, err, "encoding/json accepts the output")
	require.Equal(t, `{"X":"-Infinity"}`, string(b))
	var back struct{ X Float }
	require.NoError(t, Unmarshal(b, &back))
	require.True(t, math.IsInf(float64(back.X), -1))
	require.Error(t, Unmarshal([]byte(`{"a": "x"}`), &v))
}
