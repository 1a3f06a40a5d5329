package sched

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/sdgo/sdgo/internal/pyjson"
)

// Config is the union of the constructor arguments of the diffusers scheduler
// classes, under the JSON keys diffusers writes into scheduler_config.json. A
// class reads only the keys its constructor takes (see [Keys]); the others keep
// their zero values. [DefaultConfig] gives a class's defaults, [ConfigFor]
// those defaults with a JSON config on top.
type Config struct {
	NumTrainTimesteps   int       `json:"num_train_timesteps"`
	BetaStart           float64   `json:"beta_start"`
	BetaEnd             float64   `json:"beta_end"`
	BetaSchedule        string    `json:"beta_schedule"`
	TrainedBetas        []float64 `json:"trained_betas"`
	PredictionType      string    `json:"prediction_type"`
	TimestepSpacing     string    `json:"timestep_spacing"`
	StepsOffset         int       `json:"steps_offset"`
	RescaleBetasZeroSNR bool      `json:"rescale_betas_zero_snr"`

	ClipSample               bool    `json:"clip_sample"`
	ClipSampleRange          float64 `json:"clip_sample_range"`
	SetAlphaToOne            bool    `json:"set_alpha_to_one"`
	Thresholding             bool    `json:"thresholding"`
	DynamicThresholdingRatio float64 `json:"dynamic_thresholding_ratio"`
	SampleMaxValue           float64 `json:"sample_max_value"`

	// VarianceType is DDPM's fixed_small, fixed_small_log or fixed_large; for the
	// DPM-Solvers it is empty (diffusers' None).
	VarianceType string `json:"variance_type"`
	SkipPRKSteps bool   `json:"skip_prk_steps"`

	InterpolationType    string   `json:"interpolation_type"`
	UseKarrasSigmas      bool     `json:"use_karras_sigmas"`
	UseExponentialSigmas bool     `json:"use_exponential_sigmas"`
	UseBetaSigmas        bool     `json:"use_beta_sigmas"`
	SigmaMin             *float64 `json:"sigma_min"`
	SigmaMax             *float64 `json:"sigma_max"`
	TimestepType         string   `json:"timestep_type"`
	FinalSigmasType      string   `json:"final_sigmas_type"`

	SolverOrder      int          `json:"solver_order"`
	AlgorithmType    string       `json:"algorithm_type"`
	SolverType       string       `json:"solver_type"`
	LowerOrderFinal  bool         `json:"lower_order_final"`
	EulerAtFinal     bool         `json:"euler_at_final"`
	UseLuLambdas     bool         `json:"use_lu_lambdas"`
	LambdaMinClipped pyjson.Float `json:"lambda_min_clipped"`
	PredictX0        bool         `json:"predict_x0"`
	DisableCorrector []int        `json:"disable_corrector"`

	// Flow-matching and dynamic-shifting options exist in the DPM-Solver, UniPC and
	// DEIS configs; only their disabled values are supported.
	UseFlowSigmas      bool            `json:"use_flow_sigmas"`
	FlowShift          float64         `json:"flow_shift"`
	UseDynamicShifting bool            `json:"use_dynamic_shifting"`
	TimeShiftType      string          `json:"time_shift_type"`
	ShiftTerminal      *float64        `json:"shift_terminal"`
	SolverP            json.RawMessage `json:"solver_p"`

	OriginalInferenceSteps int     `json:"original_inference_steps"`
	TimestepScaling        float64 `json:"timestep_scaling"`
}

// classInfo describes one diffusers scheduler class.
type classInfo struct {
	defaults func() Config
	keys     []string // the constructor's arguments (JSON keys)
	build    func(cfg Config) (Scheduler, error)
}

// The keys common to every class.
var commonKeys = []string{"num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas"}

func keys(extra ...string) []string { return append(append([]string{}, commonKeys...), extra...) }

func baseDefaults() Config {
	return Config{
		NumTrainTimesteps:        1000,
		BetaStart:                0.0001,
		BetaEnd:                  0.02,
		BetaSchedule:             "linear",
		PredictionType:           "epsilon",
		TimestepSpacing:          "linspace",
		DynamicThresholdingRatio: 0.995,
		ClipSampleRange:          1.0,
		SampleMaxValue:           1.0,
	}
}

// classes is the registry of supported scheduler classes, by diffusers class name.
var classes = map[string]classInfo{
	"DDIMScheduler": {
		defaults: func() Config {
			c := baseDefaults()
			c.ClipSample, c.SetAlphaToOne, c.TimestepSpacing = true, true, "leading"
			return c
		},
		keys: keys("clip_sample", "set_alpha_to_one", "steps_offset", "prediction_type", "thresholding",
			"dynamic_thresholding_ratio", "clip_sample_range", "sample_max_value", "timestep_spacing", "rescale_betas_zero_snr"),
		build: newDDIM,
	},
	"DDPMScheduler": {
		defaults: func() Config {
			c := baseDefaults()
			c.VarianceType, c.ClipSample, c.TimestepSpacing = "fixed_small", true, "leading"
			return c
		},
		keys: keys("variance_type", "clip_sample", "prediction_type", "thresholding", "dynamic_thresholding_ratio",
			"clip_sample_range", "sample_max_value", "timestep_spacing", "steps_offset", "rescale_betas_zero_snr"),
		build: newDDPM,
	},
	"PNDMScheduler": {
		defaults: func() Config {
			c := baseDefaults()
			c.TimestepSpacing = "leading"
			return c
		},
		keys:  keys("skip_prk_steps", "set_alpha_to_one", "prediction_type", "timestep_spacing", "steps_offset"),
		build: newPNDM,
	},
	"EulerDiscreteScheduler": {
		defaults: func() Config {
			c := baseDefaults()
			c.InterpolationType, c.TimestepType, c.FinalSigmasType = "linear", "discrete", "zero"
			return c
		},
		keys: keys("prediction_type", "interpolation_type", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
			"sigma_min", "sigma_max", "timestep_spacing", "timestep_type", "steps_offset", "rescale_betas_zero_snr", "final_sigmas_type"),
		build: newEuler,
	},
	"EulerAncestralDiscreteScheduler": {
		defaults: baseDefaults,
		keys:     keys("prediction_type", "timestep_spacing", "steps_offset", "rescale_betas_zero_snr"),
		build:    newEulerAncestral,
	},
	"HeunDiscreteScheduler": {
		defaults: func() Config {
			c := baseDefaults()
			c.BetaStart, c.BetaEnd = 0.00085, 0.012
			return c
		},
		keys: keys("prediction_type", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "clip_sample",
			"clip_sample_range", "timestep_spacing", "steps_offset"),
		build: newHeun,
	},
	"LMSDiscreteScheduler": {
		defaults: baseDefaults,
		keys: keys("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "prediction_type", "timestep_spacing",
			"steps_offset"),
		build: newLMS,
	},
	"KDPM2DiscreteScheduler": {
		defaults: func() Config {
			c := baseDefaults()
			c.BetaStart, c.BetaEnd = 0.00085, 0.012
			return c
		},
		keys: keys("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "prediction_type", "timestep_spacing",
			"steps_offset"),
		build: newKDPM2,
	},
	"KDPM2AncestralDiscreteScheduler": {
		defaults: func() Config {
			c := baseDefaults()
			c.BetaStart, c.BetaEnd = 0.00085, 0.012
			return c
		},
		keys: keys("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "prediction_type", "timestep_spacing",
			"steps_offset"),
		build: newKDPM2Ancestral,
	},
	"DPMSolverMultistepScheduler": {
		defaults: func() Config {
			c := baseDefaults()
			c.SolverOrder, c.AlgorithmType, c.SolverType, c.LowerOrderFinal = 2, "dpmsolver++", "midpoint", true
			c.FlowShift, c.FinalSigmasType, c.LambdaMinClipped, c.TimeShiftType = 1, "zero", pyjson.Float(math.Inf(-1)), "exponential"
			return c
		},
		keys: keys("solver_order", "prediction_type", "thresholding", "dynamic_thresholding_ratio", "sample_max_value",
			"algorithm_type", "solver_type", "lower_order_final", "euler_at_final", "use_karras_sigmas", "use_exponential_sigmas",
			"use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas", "flow_shift", "final_sigmas_type", "lambda_min_clipped",
			"variance_type", "timestep_spacing", "steps_offset", "rescale_betas_zero_snr", "use_dynamic_shifting", "time_shift_type"),
		build: newDPMMultistep,
	},
	"DPMSolverSinglestepScheduler": {
		defaults: func() Config {
			c := baseDefaults()
			c.SolverOrder, c.AlgorithmType, c.SolverType = 2, "dpmsolver++", "midpoint"
			c.FlowShift, c.FinalSigmasType, c.LambdaMinClipped, c.TimeShiftType = 1, "zero", pyjson.Float(math.Inf(-1)), "exponential"
			return c
		},
		keys: keys("solver_order", "prediction_type", "thresholding", "dynamic_thresholding_ratio", "sample_max_value",
			"algorithm_type", "solver_type", "lower_order_final", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
			"use_flow_sigmas", "flow_shift", "final_sigmas_type", "lambda_min_clipped", "variance_type", "use_dynamic_shifting",
			"time_shift_type"),
		build: newDPMSinglestep,
	},
	"UniPCMultistepScheduler": {
		defaults: func() Config {
			c := baseDefaults()
			c.SolverOrder, c.PredictX0, c.SolverType, c.LowerOrderFinal = 2, true, "bh2", true
			c.FlowShift, c.FinalSigmasType, c.TimeShiftType = 1, "zero", "exponential"
			return c
		},
		keys: keys("solver_order", "prediction_type", "thresholding", "dynamic_thresholding_ratio", "sample_max_value",
			"predict_x0", "solver_type", "lower_order_final", "disable_corrector", "solver_p", "use_karras_sigmas",
			"use_exponential_sigmas", "use_beta_sigmas", "use_flow_sigmas", "flow_shift", "timestep_spacing", "steps_offset",
			"final_sigmas_type", "rescale_betas_zero_snr", "use_dynamic_shifting", "time_shift_type", "sigma_min", "sigma_max",
			"shift_terminal"),
		build: newUniPC,
	},
	"DEISMultistepScheduler": {
		defaults: func() Config {
			c := baseDefaults()
			c.SolverOrder, c.AlgorithmType, c.SolverType, c.LowerOrderFinal = 2, "deis", "logrho", true
			c.FlowShift, c.TimeShiftType = 1, "exponential"
			return c
		},
		keys: keys("solver_order", "prediction_type", "thresholding", "dynamic_thresholding_ratio", "sample_max_value",
			"algorithm_type", "solver_type", "lower_order_final", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
			"use_flow_sigmas", "flow_shift", "timestep_spacing", "steps_offset", "use_dynamic_shifting", "time_shift_type"),
		build: newDEIS,
	},
	"LCMScheduler": {
		defaults: lcmDefaults,
		keys:     lcmKeys,
		build:    newLCM,
	},
	"TCDScheduler": {
		defaults: lcmDefaults,
		keys:     lcmKeys,
		build:    newTCD,
	},
}

func lcmDefaults() Config {
	c := baseDefaults()
	c.BetaStart, c.BetaEnd, c.BetaSchedule = 0.00085, 0.012, "scaled_linear"
	c.OriginalInferenceSteps, c.SetAlphaToOne, c.TimestepSpacing, c.TimestepScaling = 50, true, "leading", 10
	return c
}

var lcmKeys = keys("original_inference_steps", "clip_sample", "clip_sample_range", "set_alpha_to_one", "steps_offset",
	"prediction_type", "thresholding", "dynamic_thresholding_ratio", "sample_max_value", "timestep_spacing",
	"timestep_scaling", "rescale_betas_zero_snr")

// Classes returns the names of the supported diffusers scheduler classes, sorted.
func Classes() []string {
	out := make([]string, 0, len(classes))
	for n := range classes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func lookupClass(name string) (classInfo, error) {
	ci, ok := classes[name]
	if !ok {
		return classInfo{}, fmt.Errorf("sched: unknown scheduler class %q; supported: %s", name, strings.Join(Classes(), ", "))
	}
	return ci, nil
}

// DefaultConfig returns the defaults of a diffusers scheduler class's constructor.
func DefaultConfig(className string) (Config, error) {
	ci, err := lookupClass(className)
	if err != nil {
		return Config{}, err
	}
	return ci.defaults(), nil
}

// Keys returns the JSON keys a class's constructor takes, sorted.
func Keys(className string) ([]string, error) {
	ci, err := lookupClass(className)
	if err != nil {
		return nil, err
	}
	k := append([]string{}, ci.keys...)
	sort.Strings(k)
	return k, nil
}

// ConfigFor returns the configuration diffusers gives className when it is built
// from the given JSON objects (XScheduler.from_config(config, **overrides)): the
// class's defaults, then, layer by layer, the values of the keys its constructor
// takes. Keys it does not take (including _class_name) are ignored; a JSON null
// leaves the default. Python's Infinity/-Infinity/NaN are accepted.
func ConfigFor(className string, layers ...[]byte) (Config, error) {
	ci, err := lookupClass(className)
	if err != nil {
		return Config{}, err
	}
	cfg := ci.defaults()
	for _, layer := range layers {
		if err := overlay(&cfg, ci.keys, layer); err != nil {
			return Config{}, err
		}
	}
	return cfg, nil
}

// overlay decodes the keys of data that are in accepted onto cfg.
func overlay(cfg *Config, accepted []string, data []byte) error {
	var raw map[string]json.RawMessage
	if err := pyjson.Unmarshal(data, &raw); err != nil {
		return fmt.Errorf("sched: scheduler config is not a JSON object: %w", err)
	}
	for _, k := range accepted {
		v, ok := raw[k]
		if !ok {
			continue
		}
		one, err := json.Marshal(map[string]json.RawMessage{k: v})
		if err != nil {
			return fmt.Errorf("sched: scheduler config key %q: %w", k, err)
		}
		if err := json.Unmarshal(one, cfg); err != nil {
			return fmt.Errorf("sched: scheduler config key %q has an invalid value %s: %w", k, v, err)
		}
	}
	return nil
}

// className returns the _class_name of a scheduler_config.json.
func className(data []byte) (string, error) {
	var head struct {
		ClassName *string `json:"_class_name"`
	}
	if err := pyjson.Unmarshal(data, &head); err != nil {
		return "", fmt.Errorf("sched: scheduler config is not a JSON object with a string _class_name: %w", err)
	}
	if head.ClassName == nil || *head.ClassName == "" {
		return "", fmt.Errorf("sched: scheduler config has no _class_name")
	}
	return *head.ClassName, nil
}

// oneOf checks that a string field holds one of the allowed values.
func oneOf(class, key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("sched: %s: %s is %q; expected one of %s", class, key, v, strings.Join(allowed, ", "))
}

// validateCommon checks the fields every class shares and those a class reads
// through the shared machinery.
func validateCommon(class string, c *Config, betaSchedules ...string) error {
	if c.NumTrainTimesteps < 2 {
		return fmt.Errorf("sched: %s: num_train_timesteps is %d; expected at least 2", class, c.NumTrainTimesteps)
	}
	if c.TrainedBetas == nil {
		allowed := append([]string{"linear", "scaled_linear", "squaredcos_cap_v2"}, betaSchedules...)
		if err := oneOf(class, "beta_schedule", c.BetaSchedule, allowed...); err != nil {
			return err
		}
	} else if len(c.TrainedBetas) != c.NumTrainTimesteps {
		return fmt.Errorf("sched: %s: trained_betas has %d values; expected num_train_timesteps = %d", class, len(c.TrainedBetas), c.NumTrainTimesteps)
	}
	return nil
}

func validateSpacing(class string, c *Config) error {
	return oneOf(class, "timestep_spacing", c.TimestepSpacing, "leading", "linspace", "trailing")
}

func validatePrediction(class string, c *Config, allowed ...string) error {
	if len(allowed) == 0 {
		allowed = []string{"epsilon", "v_prediction", "sample"}
	}
	return oneOf(class, "prediction_type", c.PredictionType, allowed...)
}

func validateSigmaKind(class string, c *Config) error {
	n := 0
	for _, b := range []bool{c.UseKarrasSigmas, c.UseExponentialSigmas, c.UseBetaSigmas} {
		if b {
			n++
		}
	}
	if n > 1 {
		return fmt.Errorf("sched: %s: only one of use_karras_sigmas, use_exponential_sigmas, use_beta_sigmas can be true", class)
	}
	return nil
}

func validateNoFlow(class string, c *Config) error {
	if c.UseFlowSigmas {
		return fmt.Errorf("sched: %s: use_flow_sigmas (flow-matching models) is not supported", class)
	}
	if c.UseDynamicShifting {
		return fmt.Errorf("sched: %s: use_dynamic_shifting (flow-matching models) is not supported", class)
	}
	return nil
}

func validateThreshold(class string, c *Config) error {
	if c.Thresholding && !(c.DynamicThresholdingRatio > 0 && c.DynamicThresholdingRatio <= 1) {
		return fmt.Errorf("sched: %s: dynamic_thresholding_ratio is %v; expected a value in (0, 1]", class, c.DynamicThresholdingRatio)
	}
	return nil
}
