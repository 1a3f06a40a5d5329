package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/sdgo/sdgo/diffusion/sched"
)

func init() {
	register(command{name: "schedule", summary: "print the timesteps and sigmas of a scheduler", run: runSchedule})
}

// scheduleJSON is the --json output of sd schedule, a contract: exactly these
// keys, sigmas omitted for schedulers that have none.
type scheduleJSON struct {
	Class     string    `json:"class"`
	Timesteps []float64 `json:"timesteps"`
	Sigmas    []float64 `json:"sigmas,omitempty"`
}

func runSchedule(ctx context.Context, e *env, args []string) error {
	flags := newFlags(e, "schedule", "--model DIR | --scheduler-config FILE [--scheduler NAME] --steps N [--strength F] [--json]")
	model := flags.String("model", "", "a diffusers model folder (reads scheduler/scheduler_config.json)")
	configPath := flags.String("scheduler-config", "", "a scheduler_config.json")
	name := flags.String("scheduler", "", `scheduler to use instead of the model's: a short name (euler_a, dpmpp_2m_karras, ...), an A1111 name ("DPM++ 2M Karras") or a diffusers class`)
	steps := flags.Int("steps", 0, "number of inference steps")
	strength := flags.Float64("strength", 1, "image-to-image strength in (0, 1]: keep the last strength*steps steps")
	asJSON := flags.Bool("json", false, `print {"class", "timesteps", "sigmas"} as JSON`)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, flags.Arg(0))
	}
	if (*model == "") == (*configPath == "") {
		return fmt.Errorf("%w: give exactly one of --model and --scheduler-config", errUsage)
	}
	if *steps < 1 {
		return fmt.Errorf("%w: --steps must be at least 1", errUsage)
	}
	if !(*strength > 0 && *strength <= 1) {
		return fmt.Errorf("%w: --strength is %v; expected a value in (0, 1]", errUsage, *strength)
	}

	path := *configPath
	if *model != "" {
		dir, err := resolveModel(ctx, *model, "")
		if err != nil {
			return err
		}
		*model = dir
		path = filepath.Join(*model, "scheduler", "scheduler_config.json")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if *model != "" && errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("--model %s: no scheduler/scheduler_config.json (expected a diffusers model folder)", *model)
		}
		return err
	}
	s, err := sched.FromName(*name, data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	ts, err := sched.SetTimestepsStrength(s, *steps, *strength)
	if err != nil {
		return err
	}
	begin := len(s.Timesteps()) - len(ts)
	var sigmas []float64
	if sg := s.Sigmas(); sg != nil {
		sigmas = sg[begin:]
	}

	if *asJSON {
		out := scheduleJSON{Class: s.Class(), Timesteps: ts, Sigmas: sigmas}
		b, err := json.Marshal(out)
		if err != nil {
			return fmt.Errorf("encoding the schedule: %w", err)
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", b)
		return err
	}
	return printSchedule(e, s, *steps, *strength, ts, sigmas)
}

func printSchedule(e *env, s sched.Scheduler, steps int, strength float64, ts, sigmas []float64) error {
	w := e.stdout
	fmt.Fprintf(w, "%s: %d steps", s.Class(), steps)
	if strength < 1 {
		fmt.Fprintf(w, ", strength %v", strength)
	}
	fmt.Fprintf(w, ", %d model evaluations, init_noise_sigma %s\n", len(ts), fmtNum(s.InitNoiseSigma()))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if sigmas != nil {
		fmt.Fprintln(tw, "step\ttimestep\tsigma\t")
	} else {
		fmt.Fprintln(tw, "step\ttimestep\t")
	}
	for i, t := range ts {
		if sigmas != nil && i < len(sigmas) {
			fmt.Fprintf(tw, "%d\t%s\t%s\t\n", i, fmtNum(t), fmtNum(sigmas[i]))
		} else {
			fmt.Fprintf(tw, "%d\t%s\t\n", i, fmtNum(t))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(sigmas) > len(ts) {
		rest := ""
		for _, v := range sigmas[len(ts):] {
			rest += " " + fmtNum(v)
		}
		fmt.Fprintf(w, "final sigma%s\n", rest)
	}
	return nil
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'g', 8, 64) }
