package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Heartbeat is what the worker posts to Config.Orchestrator +
// "/v1/worker-heartbeat".
type Heartbeat struct {
	WorkerID string `json:"worker_id"`
	Model    string `json:"model"`
	Device   string `json:"device"`
	// Address is the URL where the worker is reached.
	Address string `json:"address"`
	// Status is loading, idle, busy (a job runs or the queue is full),
	// draining (shutting down) or failed (the model did not load).
	Status string `json:"status"`
	// QueueDepth is the number of jobs waiting; Running those running.
	QueueDepth int    `json:"queue_depth"`
	Running    int    `json:"running"`
	Version    string `json:"version"`
}

func (s *Server) kickHeartbeat() {
	select {
	case s.beatNow <- struct{}{}:
	default:
	}
}

func (s *Server) heartbeat() Heartbeat {
	s.mu.Lock()
	defer s.mu.Unlock()
	status, _ := s.readinessLocked()
	return Heartbeat{WorkerID: s.cfg.WorkerID, Model: s.info.Model, Device: s.cfg.Device, Address: s.cfg.Address,
		Status: status, QueueDepth: len(s.queue), Running: s.running, Version: s.cfg.Version}
}

// heartbeats posts a heartbeat at once, after the model loads, and every
// HeartbeatInterval; a failed post is retried with exponential backoff (from
// a quarter of the interval, at most 1 s, up to the interval). It runs apart
// from the job runners, so a slow orchestrator never delays a generation.
func (s *Server) heartbeats() {
	defer s.wg.Done()
	interval := s.cfg.HeartbeatInterval
	first := min(time.Second, interval/4)
	backoff := time.Duration(0)
	url := strings.TrimRight(s.cfg.Orchestrator, "/") + "/v1/worker-heartbeat"
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-s.baseCtx.Done():
			return
		case <-t.C:
		case <-s.beatNow:
		}
		next := interval
		if err := s.sendHeartbeat(url, interval); err != nil {
			if backoff == 0 {
				backoff = first
			} else {
				backoff = min(2*backoff, interval)
			}
			next = backoff
			s.log.Warn("heartbeat failed", "url", url, "err", err, "retry_in", backoff.String())
		} else {
			backoff = 0
		}
		t.Reset(next)
	}
}

func (s *Server) sendHeartbeat(url string, interval time.Duration) error {
	body, err := json.Marshal(s.heartbeat())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(s.baseCtx, min(interval, 10*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("serve: heartbeat: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("serve: heartbeat: %w", err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("serve: heartbeat: the orchestrator answered %s", resp.Status)
	}
	return nil
}
