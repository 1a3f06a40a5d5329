package rng

import (
	"math"
	"math/bits"
)

// This file reproduces, bit for bit, the sine and cosine that CUDA's
// __sincosf returns on NVIDIA Hopper GPUs (H100/H200), which curand's
// Box-Muller transform calls. __sincosf compiles to
//
//	FMUL.RZ t, v, 0.15915494 ; MUFU.SIN s, t ; MUFU.COS c, t
//
// and MUFU is a table-driven quadratic interpolator whose results differ
// from the true sine by up to about 2^-22, so no libm function reproduces
// them. The model below was derived from the hardware's output for every
// one of its 2^25 distinct inputs (measured on an H200) and reproduces all
// of them:
//
//   - the argument in revolutions, t = RZ(v * float32(1/2π)), is truncated
//     to k = floor(t * 2^25); k's top two bits pick the quadrant and the
//     low 23 bits x the position inside it;
//   - sin and cos of every quadrant are ±S(x) or ±S(2^23-1-x) for one
//     function S on the first quadrant (the mirror image is a one's
//     complement, not 2^23-x);
//   - S(x) = C0 + C1*xl + C2*sq(xl) in fixed point with 37 fraction bits,
//     where the top 6 bits of x select one of 64 coefficient sets, xl is the
//     low 17 bits, and sq is xl² from a truncated squarer that drops the
//     partial products below 2^19, scaled by 2^-19;
//   - the fixed-point sum is truncated (not rounded) to 24 significant bits.

// mufuCoeffs are C0, C1, C2 for the 64 segments of the first quadrant, in
// units of 2^-37 (C1 per unit of xl, C2 per unit of sq(xl)). C0 is any value
// in the range the hardware's outputs allow; these reproduce all of them.
var mufuCoeffs = [64][3]int64{
	{0, 25737, -14},
	{3372904448, 25730, -48},
	{6743801856, 25706, -76},
	{10110623744, 25668, -110},
	{13471358976, 25613, -137},
	{16823984128, 25544, -171},
	{20166463488, 25459, -201},
	{23496810496, 25358, -229},
	{26812993536, 25243, -262},
	{30113038336, 25112, -292},
	{33394933760, 24966, -322},
	{36656717824, 24805, -352},
	{39896412160, 24629, -381},
	{43112091648, 24438, -410},
	{46301777920, 24233, -441},
	{49463582720, 24013, -470},
	{52595609600, 23778, -497},
	{55695945728, 23529, -525},
	{58762719232, 23266, -553},
	{61794107392, 22989, -581},
	{64788275200, 22698, -608},
	{67743399936, 22394, -637},
	{70657728512, 22076, -664},
	{73529516032, 21744, -688},
	{76356976640, 21400, -715},
	{79138471936, 21042, -738},
	{81872281600, 20672, -763},
	{84556783616, 20290, -790},
	{87190335488, 19895, -812},
	{89771380736, 19489, -839},
	{92298346496, 19070, -859},
	{94769717248, 18640, -881},
	{97184010240, 18199, -904},
	{99539755008, 17747, -926},
	{101835546624, 17284, -946},
	{104069984256, 16811, -967},
	{106241736704, 16328, -988},
	{108349513728, 15834, -1004},
	{110391992320, 15332, -1025},
	{112367996928, 14820, -1043},
	{114276302848, 14299, -1059},
	{116115795968, 13769, -1074},
	{117885313024, 13232, -1093},
	{119583838208, 12686, -1107},
	{121210322944, 12133, -1123},
	{122763804672, 11572, -1136},
	{124243337216, 11004, -1148},
	{125648027648, 10430, -1162},
	{126977036288, 9849, -1172},
	{128229548032, 9263, -1185},
	{129404821504, 8671, -1196},
	{130502160384, 8073, -1203},
	{131520880640, 7471, -1213},
	{132460384256, 6864, -1220},
	{133320069120, 6254, -1230},
	{134099484672, 5639, -1236},
	{134798106624, 5021, -1242},
	{135415529472, 4400, -1247},
	{135951388672, 3776, -1250},
	{136405348352, 3151, -1258},
	{136777142272, 2523, -1260},
	{137066565632, 1893, -1260},
	{137273401344, 1263, -1263},
	{137397559296, 632, -1265},
}

const (
	mufuQuadrantBits = 23
	mufuQuadrant     = 1 << mufuQuadrantBits
	mufuSegmentBits  = 17
)

// mufuSquare is xl*xl without the partial products x_i*x_j*2^(i+j) of weight
// below 2^19, scaled by 2^-19 (exact: every kept product is a multiple of 2^19).
func mufuSquare(xl int64) int64 {
	// The dropped products are x_i² 2^(2i) for 2i < 19 and the doubled cross
	// products x_i x_j 2^(i+j+1), i < j, for i+j+1 < 19.
	var drop int64
	for i := uint(0); i <= 9; i++ {
		if xl>>i&1 == 0 {
			continue
		}
		drop += 1 << (2 * i)
		if hi := 17 - i; hi > i {
			// bits i+1 .. 17-i of xl, each x_j contributing 2^(i+j+1)
			mask := int64(1)<<(hi+1) - int64(1)<<(i+1)
			drop += (xl & mask) << (i + 1)
		}
	}
	return (xl*xl - drop) >> 19
}

// mufuQuarterSine is S(x): the hardware's sine of x·(π/2)/2^23 for x in
// [0, 2^23), non-negative.
func mufuQuarterSine(x uint32) float32 {
	c := &mufuCoeffs[x>>mufuSegmentBits]
	xl := int64(x & (1<<mufuSegmentBits - 1))
	r := c[0] + c[1]*xl + c[2]*mufuSquare(xl)
	if n := bits.Len64(uint64(r)); n > 24 {
		r = r >> uint(n-24) << uint(n-24)
	}
	return float32(r) * 0x1p-37
}

// mulRZ32 returns a*b rounded toward zero to float32, as FMUL.RZ does. The
// float64 product of two float32 values is exact.
func mulRZ32(a, b float32) float32 {
	p := float64(a) * float64(b)
	f := float32(p)
	if math.Abs(float64(f)) > math.Abs(p) {
		f = math.Nextafter32(f, 0)
	}
	return f
}

// negNonZero negates x unless it is zero; the hardware's zero results are
// positive in every quadrant.
func negNonZero(x float32) float32 {
	if x == 0 {
		return 0
	}
	return -x
}

// cudaSinCos returns __sincosf(v) as an H100/H200 computes it, for v in
// (0, 2π]: the only arguments curand's Box-Muller transform produces.
func cudaSinCos(v float32) (sin, cos float32) {
	t := mulRZ32(v, 0.15915493667125701904)
	k := uint32(float64(t)*(1<<25)) & (1<<25 - 1)
	x := k & (mufuQuadrant - 1)
	s := mufuQuarterSine(x)
	c := mufuQuarterSine(mufuQuadrant - 1 - x)
	switch k >> mufuQuadrantBits {
	case 0:
		return s, c
	case 1:
		return c, negNonZero(s)
	case 2:
		return negNonZero(s), negNonZero(c)
	default:
		return negNonZero(c), s
	}
}
