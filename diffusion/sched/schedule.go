package sched

import (
	"fmt"
	"math"
)

// betasFor returns the training betas a config describes, as diffusers' float32
// tensor: trained_betas, or the beta_schedule.
func betasFor(c *Config) []float32 {
	n := c.NumTrainTimesteps
	if c.TrainedBetas != nil {
		return toF32(c.TrainedBetas)
	}
	switch c.BetaSchedule {
	case "scaled_linear":
		b := torchLinspace32(math.Sqrt(c.BetaStart), math.Sqrt(c.BetaEnd), n)
		for i, x := range b {
			b[i] = x * x
		}
		return b
	case "squaredcos_cap_v2":
		return betasForAlphaBar(n, func(t float64) float64 {
			c := math.Cos((t + 0.008) / 1.008 * math.Pi / 2)
			return c * c
		})
	case "exp":
		return betasForAlphaBar(n, func(t float64) float64 { return math.Exp(t * -12.0) })
	case "laplace":
		return betasForAlphaBar(n, func(t float64) float64 {
			lmb := -0.5 * math.Copysign(1, 0.5-t) * math.Log(1-2*math.Abs(0.5-t)+1e-6)
			snr := math.Exp(lmb)
			return math.Sqrt(snr / (1 + snr))
		})
	case "sigmoid":
		x := torchLinspace32(-6, 6, n)
		scale, shift := float32(c.BetaEnd-c.BetaStart), float32(c.BetaStart)
		for i, v := range x {
			s := float32(1 / (1 + math.Exp(-float64(v))))
			x[i] = s*scale + shift
		}
		return x
	default: // "linear"; validated by the constructors
		return torchLinspace32(c.BetaStart, c.BetaEnd, n)
	}
}

// betasForAlphaBar discretises a cumulative-alpha function (diffusers'
// betas_for_alpha_bar with max_beta 0.999), in float64, cast to float32.
func betasForAlphaBar(n int, alphaBar func(float64) float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		t1 := float64(i) / float64(n)
		t2 := float64(i+1) / float64(n)
		out[i] = float32(math.Min(1-alphaBar(t2)/alphaBar(t1), 0.999))
	}
	return out
}

// cumprod32 is torch.cumprod on a float32 CPU tensor: the running product is
// kept in float64 and each output rounded to float32.
func cumprod32(v []float32) []float32 {
	out := make([]float32, len(v))
	acc := 1.0
	for i, x := range v {
		acc *= float64(x)
		out[i] = float32(acc)
	}
	return out
}

// rescaleZeroTerminalSNR is diffusers' rescale_zero_terminal_snr in float32.
func rescaleZeroTerminalSNR(betas []float32) []float32 {
	alphas := make([]float32, len(betas))
	for i, b := range betas {
		alphas[i] = 1 - b
	}
	ac := cumprod32(alphas)
	s := make([]float32, len(ac))
	for i, a := range ac {
		s[i] = sqrt32(a)
	}
	s0, sT := s[0], s[len(s)-1]
	scale := s0 / (s0 - sT)
	for i := range s {
		s[i] = (s[i] - sT) * scale
	}
	bar := make([]float32, len(s))
	for i, x := range s {
		bar[i] = x * x
	}
	out := make([]float32, len(bar))
	out[0] = 1 - bar[0]
	for i := 1; i < len(bar); i++ {
		out[i] = 1 - bar[i]/bar[i-1]
	}
	return out
}

// trainSchedule is the part every class computes in its constructor.
type trainSchedule struct {
	betas         []float32
	alphasCumprod []float32
}

// newTrainSchedule computes betas and alphas_cumprod. rescale applies
// rescale_betas_zero_snr; zeroSNRTail also sets the last alphas_cumprod to
// 2**-24, as the sigma-based classes do so that the last sigma stays finite.
func newTrainSchedule(c *Config, rescale, zeroSNRTail bool) trainSchedule {
	betas := betasFor(c)
	if rescale {
		betas = rescaleZeroTerminalSNR(betas)
	}
	alphas := make([]float32, len(betas))
	for i, b := range betas {
		alphas[i] = 1 - b
	}
	ac := cumprod32(alphas)
	if rescale && zeroSNRTail {
		ac[len(ac)-1] = float32(math.Ldexp(1, -24))
	}
	return trainSchedule{betas: betas, alphasCumprod: ac}
}

// trainSigmas is ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 in float32.
func (ts trainSchedule) trainSigmas() []float32 {
	out := make([]float32, len(ts.alphasCumprod))
	for i, a := range ts.alphasCumprod {
		out[i] = sqrt32((1 - a) / a)
	}
	return out
}

// logSigmas32 is np.log of the float32 training sigmas (a float32 array).
func logSigmas32(sigmas []float32) []float32 {
	out := make([]float32, len(sigmas))
	for i, s := range sigmas {
		out[i] = npLog32(s)
	}
	return out
}

// spacedTimesteps returns num inference timesteps in [0, N) the way DDIM, DDPM
// and the Euler family space them (timestep_spacing): linspace rounds to even,
// leading adds steps_offset, trailing subtracts one. The values are float64
// before any cast; callers round or cast as their class does.
func spacedTimesteps(spacing string, n, num, offset int, round bool) ([]float64, error) {
	var ts []float64
	switch spacing {
	case "linspace":
		ts = reversed(npLinspace(0, float64(n-1), num))
		if round {
			for i := range ts {
				ts[i] = math.RoundToEven(ts[i])
			}
		}
	case "leading":
		ratio := n / num
		ts = make([]float64, num)
		for i := range ts {
			ts[i] = float64((num-1-i)*ratio + offset)
		}
	case "trailing":
		ratio := float64(n) / float64(num)
		ts = npArange(float64(n), 0, -ratio)
		for i := range ts {
			ts[i] = math.RoundToEven(ts[i]) - 1
		}
	default:
		return nil, fmt.Errorf("sched: timestep_spacing %q is not one of leading, linspace, trailing", spacing)
	}
	return ts, nil
}

// float32Timesteps casts to float32 and back (np.float32 timesteps).
func float32Timesteps(ts []float64) []float64 {
	out := make([]float64, len(ts))
	for i, t := range ts {
		out[i] = float64(float32(t))
	}
	return out
}

// multistepTimesteps is the spacing of the DPM-Solver, UniPC and DEIS classes,
// which take num+1 points and drop the last; last is the number of usable
// training timesteps (after lambda_min_clipped).
func multistepTimesteps(spacing string, n, last, num, offset int) ([]float64, error) {
	var ts []float64
	switch spacing {
	case "linspace":
		v := npLinspace(0, float64(last-1), num+1)
		for i := range v {
			v[i] = math.RoundToEven(v[i])
		}
		ts = reversed(v)[:num]
	case "leading":
		ratio := last / (num + 1)
		ts = make([]float64, num)
		for i := range ts {
			ts[i] = float64((num-i)*ratio + offset)
		}
	case "trailing":
		ratio := float64(n) / float64(num)
		ts = npArange(float64(last), 0, -ratio)
		for i := range ts {
			ts[i] = math.RoundToEven(ts[i]) - 1
		}
	default:
		return nil, fmt.Errorf("sched: timestep_spacing %q is not one of leading, linspace, trailing", spacing)
	}
	return ts, nil
}

// sigmaBounds returns sigma_min and sigma_max for the Karras, exponential and
// beta schedules: the config's, where the class takes them, else the ends of in.
func sigmaBounds(c *Config, useConfig bool, in []float64) (lo, hi float64) {
	lo, hi = in[len(in)-1], in[0]
	if useConfig && c.SigmaMin != nil {
		lo = *c.SigmaMin
	}
	if useConfig && c.SigmaMax != nil {
		hi = *c.SigmaMax
	}
	return lo, hi
}

// karrasSigmas is the schedule of Karras et al. (2022), rho = 7, in float64.
func karrasSigmas(lo, hi float64, num int) []float64 {
	const rho = 7.0
	ramp := npLinspace(0, 1, num)
	minInv := math.Pow(lo, 1/rho)
	maxInv := math.Pow(hi, 1/rho)
	out := make([]float64, num)
	for i, r := range ramp {
		out[i] = math.Pow(maxInv+r*(minInv-maxInv), rho)
	}
	return out
}

// exponentialSigmas is exp(linspace(log(hi), log(lo), num)).
func exponentialSigmas(lo, hi float64, num int) []float64 {
	v := npLinspace(math.Log(hi), math.Log(lo), num)
	for i := range v {
		v[i] = math.Exp(v[i])
	}
	return v
}

// betaSigmas is the schedule of "Beta Sampling is All You Need" (alpha = beta = 0.6).
func betaSigmas(lo, hi float64, num int) []float64 {
	ramp := npLinspace(0, 1, num)
	out := make([]float64, num)
	for i, r := range ramp {
		out[i] = lo + betaPPF(1-r, 0.6, 0.6)*(hi-lo)
	}
	return out
}

// sigmaToT maps a sigma to a fractional training timestep by interpolating
// log-sigma (diffusers' _sigma_to_t with numpy float64 arithmetic over the
// float32 log_sigmas).
func sigmaToT(sigma float64, logSigmas []float32) float64 {
	logSigma := math.Log(math.Max(sigma, 1e-10))
	lowIdx := 0
	for i, l := range logSigmas {
		if logSigma-float64(l) >= 0 {
			lowIdx = i
		}
	}
	if lowIdx > len(logSigmas)-2 {
		lowIdx = len(logSigmas) - 2
	}
	low, high := logSigmas[lowIdx], logSigmas[lowIdx+1]
	w := (float64(low) - logSigma) / float64(low-high)
	w = clip01(w)
	return (1-w)*float64(lowIdx) + w*float64(lowIdx+1)
}

// sigmaToT32 is _sigma_to_t as KDPM2 calls it on float32 torch tensors, where
// every operation stays in float32.
func sigmaToT32(sigma float32, logSigmas []float32) float32 {
	logSigma := npLog32(max(sigma, float32(1e-10)))
	lowIdx := 0
	for i, l := range logSigmas {
		if logSigma-l >= 0 {
			lowIdx = i
		}
	}
	if lowIdx > len(logSigmas)-2 {
		lowIdx = len(logSigmas) - 2
	}
	low, high := logSigmas[lowIdx], logSigmas[lowIdx+1]
	w := (low - logSigma) / (low - high)
	if w < 0 {
		w = 0
	} else if w > 1 {
		w = 1
	}
	return (1-w)*float32(lowIdx) + w*float32(lowIdx+1)
}

func clip01(w float64) float64 {
	if w < 0 {
		return 0
	}
	if w > 1 {
		return 1
	}
	return w
}
