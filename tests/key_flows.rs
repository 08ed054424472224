//! Key-management flows walked the way a user walks them (issue 16): the command line
//! against a real `cirrus serve` on 127.0.0.1, real TOTP codes computed here, and the
//! messages a user reads checked against what they promise. No flow may leave a device
//! that can never log in again.

#![allow(unused_imports)] // each section uses some of these

mod common;

use common::accounts::*;
use common::keyserver::Server;
use common::*;
use std::fs;
