// Command k8s-testbin is a multi-call binary holding the Kubernetes control
// plane the vk test harness runs: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kubectl.
//
// The component is chosen by the first argument (`k8s-testbin etcd ...`) or,
// when the binary is invoked through a symlink, by the link's name
// (`kubectl ...`). Exactly one component runs per process: several of them
// install process-global signal handlers, feature gates and metric registries.
//
// Version information is stamped at link time by tests/cluster/build.sh.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	_ "time/tzdata" // CronJob time-zone support, as in the upstream mains.

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/server/v3/etcdmain"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"          // JSON log format.
	_ "k8s.io/component-base/metrics/prometheus/clientgo" // client-go metrics.
	_ "k8s.io/component-base/metrics/prometheus/version"  // version metric.
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

// components maps each sub-command to the function that runs it and returns
// the process exit code.
var components = map[string]func() int{
	"etcd": func() int {
		etcdmain.Main(os.Args)
		return 0
	},
	"kube-apiserver": func() int {
		return runCobra(apiserver.NewAPIServerCommand())
	},
	"kube-controller-manager": func() int {
		return runCobra(controllermanager.NewControllerManagerCommand())
	},
	"kube-scheduler": func() int {
		return runCobra(scheduler.NewSchedulerCommand())
	},
	"kubectl": runKubectl,
}

func runCobra(cmd *cobra.Command) int {
	return cli.Run(cmd)
}

func runKubectl() int {
	// Same start-up sequence as k8s.io/kubernetes/cmd/kubectl.
	_, _ = logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args))
	command := kubectlcmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		kubectlutil.CheckErr(err)
	}
	return 0
}

func usage() {
	names := make([]string, 0, len(components))
	for name := range components {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: %s <%s> [flags...]\n", filepath.Base(os.Args[0]), strings.Join(names, "|"))
	fmt.Fprintln(os.Stderr, "       or invoke through a symlink named after the component")
}

func main() {
	name := filepath.Base(os.Args[0])
	run, ok := components[name]
	if !ok {
		if len(os.Args) < 2 {
			usage()
			os.Exit(2)
		}
		name = os.Args[1]
		run, ok = components[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown component %q\n", name)
			usage()
			os.Exit(2)
		}
		// Make the process look exactly as if the component had been
		// started directly: cobra, kubectl's plugin handler and etcdmain
		// all read os.Args.
		os.Args = append([]string{name}, os.Args[2:]...)
	}
	os.Exit(run())
}
