package main

import (
	"errors"
	"fmt"

	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/otelcol-vsr/otelcol-vsr/internal/ports"
)

// collector is one running collector process under measurement.
type collector struct {
	otelcol, config, log string
	env                  []string
	otlp, health         int
	metrics              int // the telemetry's Prometheus port, served when a config turns it on
	cmd                  *exec.Cmd
	exited               chan error
	idleRate             float64 // CPU seconds per second when idle
	loadFrom             time.Time
	cpuFrom              time.Duration
}

// startCollector runs a config, waits until it is healthy, and measures its idle cost, which
// is taken out of the figures: they are the cost of the spans.
func startCollector(otelcol, config, name string, env []string, s *sink) (*collector, error) {
	otlp, err := ports.Free()
	if err != nil {
		return nil, err
	}
	health, err := ports.Free()
	if err != nil {
		return nil, err
	}
	metrics, err := ports.Free()
	if err != nil {
		return nil, err
	}
	c := &collector{otlp: otlp, health: health, metrics: metrics, otelcol: otelcol, config: config,
		log: filepath.Join(os.TempDir(), "bench-"+strings.NewReplacer(" ", "-", ",", "", "×", "x", "/", "-").Replace(name)+".log")}
	c.env = append(os.Environ(), append(env,
		"BENCH_OTLP_PORT="+strconv.Itoa(otlp), "BENCH_HEALTH_PORT="+strconv.Itoa(health),
		"BENCH_METRICS_PORT="+strconv.Itoa(metrics), "BENCH_SINK="+s.addr)...)
	if err := c.launch(); err != nil {
		return nil, err
	}
	idleFrom, err := processCPU(c.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	time.Sleep(idleWindow)
	if c.cpuFrom, err = processCPU(c.cmd.Process.Pid); err != nil {
		return nil, err
	}
	c.idleRate = float64(c.cpuFrom-idleFrom) / float64(idleWindow)
	c.loadFrom = time.Now()
	return c, nil
}

// launch starts the process and waits until it is healthy.
func (c *collector) launch() error {
	c.exited = make(chan error, 1)
	c.cmd = exec.Command(c.otelcol, "--config", c.config)
	c.cmd.Env = c.env
	logFile, err := os.OpenFile(c.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	if err := c.cmd.Start(); err != nil {
		return err
	}
	go func() { c.exited <- c.cmd.Wait() }()
	if err := waitHealthy(c.health, c.exited); err != nil {
		c.kill()
		return fmt.Errorf("%w (log: %s)", err, c.log)
	}
	return nil
}

// restart stops the collector as a rollout does and starts it again on the same ports.
func (c *collector) restart() error {
	if _, _, err := c.stop(); err != nil {
		return err
	}
	return c.launch()
}

// idleWindow is how long the idle collector is measured before the load.
const idleWindow = 3 * time.Second

func (c *collector) endpoint() string { return fmt.Sprintf("127.0.0.1:%d", c.otlp) }

// stop sends SIGTERM, as a rollout does, and returns the CPU the load cost and the peak RSS.
// The peak is the process's own high-water mark read before SIGTERM: wait4's ru_maxrss would also
// count the bench's memory, which the child's exec inherits as its starting maximum.
func (c *collector) stop() (cpu time.Duration, peakRSSKiB int64, err error) {
	peakRSSKiB, err = highWaterRSSKiB(c.cmd.Process.Pid)
	if err != nil {
		c.kill()
		return 0, 0, err
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(90 * time.Second):
		c.kill()
		return 0, 0, fmt.Errorf("collector did not stop within 90s (log: %s)", c.log)
	}
	ru := c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	total := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	cpu = total - c.cpuFrom - time.Duration(c.idleRate*float64(time.Since(c.loadFrom)))
	return cpu, peakRSSKiB, nil
}

func highWaterRSSKiB(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("peak RSS: %w", err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if value, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(value), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("peak RSS: no VmHWM in /proc/%d/status", pid)
}

func (c *collector) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

func waitHealthy(port int, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("collector exited at start: %v", err)
		default:
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("collector not healthy within 30s")
}

// processCPU reads a process's user+system time from /proc: start-up is not part of the cost
// of a span.
func processCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command, which is in parentheses and may contain spaces.
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}
