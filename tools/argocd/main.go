// Wrapper module: builds Argo CD's application controller and repo server, v3.6.1, from the
// published github.com/argoproj/argo-cd/v3 module. See tools/README.md.
//
// Argo CD's own cmd/main.go dispatches on the binary's name (ARGOCD_BINARY_NAME); this keeps
// the two components `nox -s gitops` runs (no API server, UI, Dex or notifications), and
// `argocd version` for the toolchain's version check.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func init() {
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
}

func main() {
	name := filepath.Base(os.Args[0])
	if v := os.Getenv("ARGOCD_BINARY_NAME"); v != "" {
		name = v
	}
	var command *cobra.Command
	switch name {
	case common.CommandApplicationController:
		command = appcontroller.NewCommand()
	case common.CommandRepoServer:
		command = reposerver.NewCommand()
	default:
		if len(os.Args) == 2 && os.Args[1] == "version" {
			fmt.Println("argocd", common.GetVersion().Version)
			return
		}
		fmt.Fprintf(os.Stderr, "argocd: set ARGOCD_BINARY_NAME to %s or %s\n",
			common.CommandApplicationController, common.CommandRepoServer)
		os.Exit(2)
	}
	if err := command.Execute(); err != nil {
		os.Exit(1)
	}
}
