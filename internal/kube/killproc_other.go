//go:build !unix

package kube

import "errors"

func sigkill(int) error { return errors.New("the kill helper runs on a Linux node only") }
