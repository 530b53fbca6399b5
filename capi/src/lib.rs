//! A C ABI for crux's compiled log-densities (`include/crux.h`): other
//! samplers and languages evaluate `log p` and its gradient through
//! `crux_logp_grad(handle, theta, grad)`, as BridgeStan offers Stan models.
//! The models are the samples' problems by name; errors never unwind
//! across the boundary (a NULL or NaN result and `crux_last_error`).

#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

use crux::{Backend, CompiledLogDensity, LogDensity, Workspace};
use crux_samples::problems::{Bpinn, Gauss100, Quickstart};

/// A compiled log-density with its workspace.
pub struct CruxModel {
    compiled: CompiledLogDensity,
    workspace: Workspace,
    initial: Vec<f64>,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_error(msg: impl Into<String>) {
    let s = CString::new(msg.into().replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(s));
}

/// The log-density of sample problem `name` (see `crux.h`).
pub fn model(name: &str, seed: u64, scale: f64) -> crux::Result<CruxModel> {
    let ld: LogDensity = match name {
        "quickstart" => Quickstart::new(seed)?.log_density(scale)?,
        "gauss100" => Gauss100::new(seed)?.log_density_scaled(scale)?,
        "bpinn" => Bpinn::new(seed)?.log_density_scaled(scale)?,
        other => {
            return Err(crux::Error::InvalidArgument {
                what: "problem".into(),
                reason: format!("unknown problem `{other}`: use quickstart, gauss100 or bpinn"),
            })
        }
    };
    let compiled = ld.compile(Backend::Cranelift)?;
    let workspace = compiled.workspace();
    Ok(CruxModel {
        compiled,
        workspace,
        initial: ld.initial_position().to_vec(),
    })
}

/// See `crux.h`.
#[no_mangle]
pub unsafe extern "C" fn crux_model_new(
    problem: *const c_char,
    seed: u64,
    likelihood_scale: f64,
) -> *mut CruxModel {
    if problem.is_null() {
        set_error("problem is NULL");
        return std::ptr::null_mut();
    }
    // SAFETY: the caller passes a NUL-terminated string.
    let name = match unsafe { CStr::from_ptr(problem) }.to_str() {
        Ok(s) => s.to_string(),
        Err(_) => {
            set_error("problem is not UTF-8");
            return std::ptr::null_mut();
        }
    };
    match std::panic::catch_unwind(|| model(&name, seed, likelihood_scale)) {
        Ok(Ok(m)) => Box::into_raw(Box::new(m)),
        Ok(Err(e)) => {
            set_error(e.to_string());
            std::ptr::null_mut()
        }
        Err(_) => {
            set_error("internal error while compiling the model");
            std::ptr::null_mut()
        }
    }
}

/// See `crux.h`.
#[no_mangle]
pub unsafe extern "C" fn crux_model_dim(m: *const CruxModel) -> usize {
    // SAFETY: `m` is NULL or a live handle from `crux_model_new`.
    unsafe { m.as_ref() }.map_or(0, |m| m.compiled.dim())
}

/// See `crux.h`.
#[no_mangle]
pub unsafe extern "C" fn crux_model_initial(m: *const CruxModel, theta: *mut f64) {
    // SAFETY: `m` is NULL or a live handle; `theta` holds `dim` entries.
    if let (Some(m), false) = (unsafe { m.as_ref() }, theta.is_null()) {
        let out = unsafe { std::slice::from_raw_parts_mut(theta, m.initial.len()) };
        out.copy_from_slice(&m.initial);
    }
}

/// See `crux.h`.
#[no_mangle]
pub unsafe extern "C" fn crux_logp_grad(
    m: *mut CruxModel,
    theta: *const f64,
    grad: *mut f64,
) -> f64 {
    // SAFETY: `m` is NULL or a live handle used by one thread at a time.
    let Some(m) = (unsafe { m.as_mut() }) else {
        set_error("model is NULL");
        return f64::NAN;
    };
    if theta.is_null() || grad.is_null() {
        set_error("theta or grad is NULL");
        return f64::NAN;
    }
    let d = m.compiled.dim();
    // SAFETY: the caller passes `dim` entries each.
    let (t, g) = unsafe {
        (
            std::slice::from_raw_parts(theta, d),
            std::slice::from_raw_parts_mut(grad, d),
        )
    };
    match m.compiled.logp_and_grad(&mut m.workspace, t, g) {
        Ok(v) => v,
        Err(e) => {
            set_error(e.to_string());
            f64::NAN
        }
    }
}

/// See `crux.h`.
#[no_mangle]
pub unsafe extern "C" fn crux_model_free(m: *mut CruxModel) {
    if !m.is_null() {
        // SAFETY: `m` came from `crux_model_new` and is freed once.
        drop(unsafe { Box::from_raw(m) });
    }
}

/// See `crux.h`.
#[no_mangle]
pub extern "C" fn crux_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |s| s.as_ptr()))
}
