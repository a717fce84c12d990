// kubectl of the pinned release, built from the published k8s.io/kubectl module (k8s.io/kubernetes,
// where its upstream main lives, carries ./staging replace directives and is not go-installable).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
		os.Exit(1)
	}
}
