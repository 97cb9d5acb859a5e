//! Variables, their initializers, collections, assignment and the global step.

use super::{Graph, Operation, Tensor, collections};
use crate::error::{Error, Result};
use crate::ops::{AssignOp, Family, Initializer, Op, Source};
use crate::tensor::{DType, shape_str};

/// Options of [`Graph::variable_with`].
#[derive(Clone, Debug)]
pub struct VariableOptions {
    /// Put the variable in the trainable collection (default true).
    pub trainable: bool,
    /// Put the variable in the local collection instead of the global one (not saved).
    pub local: bool,
    /// The op seed of a random initializer; the node index when `None`.
    pub seed: Option<u64>,
}

impl Default for VariableOptions {
    fn default() -> Self {
        VariableOptions {
            trainable: true,
            local: false,
            seed: None,
        }
    }
}

impl Graph {
    /// A trainable global variable `name` of `dtype` and fully known `shape`, with an
    /// initializer run by [`global_variables_initializer`](Self::global_variables_initializer).
    pub fn variable(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[i64],
        init: Initializer,
    ) -> Result<Tensor> {
        self.variable_with(name, dtype, shape, init, VariableOptions::default())
    }

    /// A variable with explicit [`VariableOptions`]. A variable and its initializer
    /// never carry the control dependencies of the scope they are created in (TF creates
    /// them under `init_scope`): initializing must not run the ops around it.
    pub fn variable_with(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[i64],
        init: Initializer,
        opts: VariableOptions,
    ) -> Result<Tensor> {
        let saved = std::mem::take(&mut self.control_scopes);
        let r = self.variable_inner(name, dtype, shape, init, opts);
        self.control_scopes = saved;
        r
    }

    fn variable_inner(
        &mut self,
        name: &str,
        dtype: DType,
        shape: &[i64],
        init: Initializer,
        opts: VariableOptions,
    ) -> Result<Tensor> {
        if shape.iter().any(|&d| d < 0) {
            return Err(Error::invalid_argument(format!(
                "variable '{name}' must have a fully defined shape, got {}",
                shape_str(shape)
            )));
        }
        if let Initializer::Value(v) = &init {
            let want: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            if v.shape() != want.as_slice() || v.dtype() != dtype {
                return Err(Error::invalid_argument(format!(
                    "variable '{name}' of {dtype} {} cannot be initialized from a {} tensor of shape {:?}",
                    shape_str(shape),
                    v.dtype(),
                    v.shape()
                )));
            }
        }
        if opts.trainable && dtype != DType::F32 {
            return Err(Error::invalid_argument(format!(
                "variable '{name}': only float32 variables can be trainable, got {dtype}"
            )));
        }
        let var = self.push_node(
            Op::Source(Source::Variable {
                trainable: opts.trainable,
            }),
            vec![],
            dtype,
            shape.to_vec(),
            name,
            true,
        )?;
        let full = self.name(var).to_string();
        let seed = (self.seed(), opts.seed.unwrap_or(var.0 as u64));
        let kind = match &init {
            Initializer::RandomUniform { .. } | Initializer::GlorotUniform => "random_uniform",
            Initializer::RandomNormal { .. } => "random_normal",
            Initializer::TruncatedNormal { .. } | Initializer::GlorotNormal => "truncated_normal",
            Initializer::Zeros => "zeros",
            Initializer::Ones => "ones",
            Initializer::Constant(_) | Initializer::Value(_) => "Const",
        };
        // Under the variable's own name, wherever it was made from (TF puts a slot's
        // initializer under the slot: `dense/kernel/Adam/Initializer/zeros`).
        let assign = self.root_scope(|g| {
            let value = g.push_node(
                Op::Source(Source::InitialValue { init, seed }),
                vec![],
                dtype,
                shape.to_vec(),
                &format!("{full}/Initializer/{kind}"),
                true,
            )?;
            let assign = g.add_op(
                Op::Assign(AssignOp::Assign),
                &[var, value],
                &format!("{full}/Assign"),
            )?;
            Ok(assign)
        })?;
        self.initializers.insert(var.0, assign);
        if opts.local {
            self.add_to_collection(collections::LOCAL_VARIABLES, var);
        } else {
            self.add_to_collection(collections::GLOBAL_VARIABLES, var);
        }
        if opts.trainable {
            self.add_to_collection(collections::TRAINABLE_VARIABLES, var);
        }
        Ok(var)
    }

    /// Whether `t` is a variable.
    pub fn is_variable(&self, t: Tensor) -> bool {
        self.contains(t) && self.nodes[t.0].op.is_variable()
    }

    /// The assign op that initializes variable `var`.
    pub fn initializer(&self, var: Tensor) -> Result<Operation> {
        self.initializers
            .get(&var.0)
            .map(|t| t.op())
            .ok_or_else(|| {
                Error::invalid_argument(format!("'{}' is not a variable", self.name(var)))
            })
    }

    /// The global (saved) variables.
    pub fn global_variables(&self) -> Vec<Tensor> {
        self.collection(collections::GLOBAL_VARIABLES)
    }

    /// The trainable variables.
    pub fn trainable_variables(&self) -> Vec<Tensor> {
        self.collection(collections::TRAINABLE_VARIABLES)
    }

    /// The local (not saved) variables.
    pub fn local_variables(&self) -> Vec<Tensor> {
        self.collection(collections::LOCAL_VARIABLES)
    }

    /// An op running the initializers of `vars` (TF's `tf.variables_initializer`).
    pub fn variables_initializer(&mut self, vars: &[Tensor], name: &str) -> Result<Operation> {
        let ops = vars
            .iter()
            .map(|&v| self.initializer(v))
            .collect::<Result<Vec<_>>>()?;
        self.group(&ops, name)
    }

    /// An op initializing every global variable.
    pub fn global_variables_initializer(&mut self) -> Result<Operation> {
        let vars = self.global_variables();
        self.variables_initializer(&vars, "init")
    }

    /// An op initializing every local variable.
    pub fn local_variables_initializer(&mut self) -> Result<Operation> {
        let vars = self.local_variables();
        self.variables_initializer(&vars, "init_local")
    }

    fn assign_op(&mut self, kind: AssignOp, var: Tensor, value: Tensor) -> Result<Tensor> {
        self.check(var)?;
        if !self.is_variable(var) {
            return Err(Error::invalid_argument(format!(
                "{}: '{}' is not a variable",
                kind.tf_name(),
                self.name(var)
            )));
        }
        self.add_op(Op::Assign(kind), &[var, value], kind.tf_name())
    }

    /// `var = value`; the result is the new value.
    pub fn assign(&mut self, var: Tensor, value: Tensor) -> Result<Tensor> {
        self.assign_op(AssignOp::Assign, var, value)
    }

    /// `var += value`; the result is the new value.
    pub fn assign_add(&mut self, var: Tensor, value: Tensor) -> Result<Tensor> {
        self.assign_op(AssignOp::Add, var, value)
    }

    /// `var -= value`; the result is the new value.
    pub fn assign_sub(&mut self, var: Tensor, value: Tensor) -> Result<Tensor> {
        self.assign_op(AssignOp::Sub, var, value)
    }

    /// The global step: the int64 scalar variable `global_step`, created (zero, not
    /// trainable, in the global-step collection) on first use (TF's
    /// `get_or_create_global_step`).
    pub fn global_step(&mut self) -> Result<Tensor> {
        if let Some(&t) = self.collection(collections::GLOBAL_STEP).first() {
            return Ok(t);
        }
        let t = self.root_scope(|g| {
            g.variable_with(
                "global_step",
                DType::I64,
                &[],
                Initializer::Zeros,
                VariableOptions {
                    trainable: false,
                    ..VariableOptions::default()
                },
            )
        })?;
        self.add_to_collection(collections::GLOBAL_STEP, t);
        Ok(t)
    }

    /// The global step if one was created.
    pub fn get_global_step(&self) -> Option<Tensor> {
        self.collection(collections::GLOBAL_STEP).first().copied()
    }
}
