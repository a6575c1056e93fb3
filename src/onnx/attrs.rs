//! Reading and writing node attributes.

use super::proto::{AttributeProto, NodeProto, attribute_proto::AttributeType as AT};
use super::tensor::{tensor_from_proto, tensor_to_proto};
use crate::ir::AutoPad;
use crate::tensor::Tensor;
use anyhow::{Result, bail};

/// Typed, checked access to a node's attributes.
#[derive(Clone, Copy)]
pub struct Attrs<'a> {
    node: &'a NodeProto,
}

fn kind(a: &AttributeProto) -> Option<AT> {
    a.r#type.and_then(|t| AT::try_from(t).ok()).filter(|t| *t != AT::Undefined)
}

fn wrong(a: &AttributeProto, want: &str) -> anyhow::Error {
    let name = a.name.as_deref().unwrap_or("");
    let have = kind(a).map(|k| k.as_str_name()).unwrap_or("untyped");
    anyhow::anyhow!("attribute '{name}' should be {want}, got {have}")
}

impl<'a> Attrs<'a> {
    /// Wraps a node.
    pub fn new(node: &'a NodeProto) -> Attrs<'a> {
        Attrs { node }
    }

    /// The raw attribute, if present.
    pub fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name.as_deref() == Some(name))
    }

    /// True if the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An int attribute, if present.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        let Some(a) = self.get(name) else { return Ok(None) };
        match (a.i, kind(a)) {
            (Some(i), None | Some(AT::Int)) => Ok(Some(i)),
            (None, Some(AT::Int)) => Ok(Some(0)),
            _ => Err(wrong(a, "an int")),
        }
    }

    /// An int attribute or its default.
    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.opt_int(name)?.unwrap_or(default))
    }

    /// A 0/1 attribute as a bool.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool> {
        Ok(self.int(name, default as i64)? != 0)
    }

    /// A float attribute, if present.
    pub fn opt_float(&self, name: &str) -> Result<Option<f32>> {
        let Some(a) = self.get(name) else { return Ok(None) };
        match (a.f, kind(a)) {
            (Some(f), None | Some(AT::Float)) => Ok(Some(f)),
            (None, Some(AT::Float)) => Ok(Some(0.0)),
            _ => Err(wrong(a, "a float")),
        }
    }

    /// A float attribute or its default.
    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        Ok(self.opt_float(name)?.unwrap_or(default))
    }

    /// A string attribute, if present.
    pub fn opt_string(&self, name: &str) -> Result<Option<String>> {
        let Some(a) = self.get(name) else { return Ok(None) };
        match (&a.s, kind(a)) {
            (Some(s), None | Some(AT::String)) => Ok(Some(String::from_utf8_lossy(s).into_owned())),
            (None, Some(AT::String)) => Ok(Some(String::new())),
            _ => Err(wrong(a, "a string")),
        }
    }

    /// A string attribute or its default.
    pub fn string(&self, name: &str, default: &str) -> Result<String> {
        Ok(self.opt_string(name)?.unwrap_or_else(|| default.to_string()))
    }

    /// An ints attribute, if present.
    pub fn opt_ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        let Some(a) = self.get(name) else { return Ok(None) };
        match kind(a) {
            Some(AT::Ints) => Ok(Some(a.ints.clone())),
            None if a.i.is_none() && a.f.is_none() && a.floats.is_empty() => Ok(Some(a.ints.clone())),
            _ => Err(wrong(a, "a list of ints")),
        }
    }

    /// An ints attribute, empty if absent.
    pub fn ints(&self, name: &str) -> Result<Vec<i64>> {
        Ok(self.opt_ints(name)?.unwrap_or_default())
    }

    /// A list of non-negative ints as sizes, empty if absent.
    pub fn usizes(&self, name: &str) -> Result<Vec<usize>> {
        let v = self.ints(name)?;
        if let Some(bad) = v.iter().find(|&&x| x < 0) {
            bail!("attribute '{name}' = {v:?} has a negative value {bad}");
        }
        Ok(v.into_iter().map(|x| x as usize).collect())
    }

    /// A floats attribute, if present.
    pub fn opt_floats(&self, name: &str) -> Result<Option<Vec<f32>>> {
        let Some(a) = self.get(name) else { return Ok(None) };
        match kind(a) {
            Some(AT::Floats) => Ok(Some(a.floats.clone())),
            None if a.i.is_none() && a.f.is_none() && a.ints.is_empty() => Ok(Some(a.floats.clone())),
            _ => Err(wrong(a, "a list of floats")),
        }
    }

    /// A tensor attribute, decoded, if present.
    pub fn opt_tensor(&self, name: &str) -> Result<Option<Tensor>> {
        let Some(a) = self.get(name) else { return Ok(None) };
        match (&a.t, kind(a)) {
            (Some(t), None | Some(AT::Tensor)) => Ok(Some(tensor_from_proto(t)?)),
            _ => Err(wrong(a, "a tensor")),
        }
    }

    /// The `auto_pad` attribute.
    pub fn auto_pad(&self) -> Result<AutoPad> {
        Ok(match self.string("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" | "" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            other => bail!("auto_pad '{other}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID"),
        })
    }
}

fn named(name: &str, ty: AT) -> AttributeProto {
    AttributeProto { name: Some(name.to_string()), r#type: Some(ty as i32), ..Default::default() }
}

/// An int attribute.
pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { i: Some(v), ..named(name, AT::Int) }
}

/// A float attribute.
pub fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { f: Some(v), ..named(name, AT::Float) }
}

/// A string attribute.
pub fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { s: Some(v.as_bytes().to_vec()), ..named(name, AT::String) }
}

/// An ints attribute.
pub fn attr_ints(name: &str, v: impl IntoIterator<Item = i64>) -> AttributeProto {
    AttributeProto { ints: v.into_iter().collect(), ..named(name, AT::Ints) }
}

/// A tensor attribute.
pub fn attr_tensor(name: &str, t: &Tensor) -> AttributeProto {
    AttributeProto { t: Some(tensor_to_proto("", t)), ..named(name, AT::Tensor) }
}

/// The ONNX spelling of an `AutoPad`.
pub fn auto_pad_name(p: AutoPad) -> &'static str {
    match p {
        AutoPad::NotSet => "NOTSET",
        AutoPad::SameUpper => "SAME_UPPER",
        AutoPad::SameLower => "SAME_LOWER",
        AutoPad::Valid => "VALID",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_access_and_defaults() {
        let node = NodeProto {
            attribute: vec![
                attr_int("axis", -2),
                attr_float("alpha", 0.5),
                attr_string("mode", "linear"),
                attr_ints("pads", [1, 2, 1, 2]),
                attr_ints("bad", [-1]),
                AttributeProto {
                    name: Some("zero".into()),
                    r#type: Some(AT::Int as i32),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let a = Attrs::new(&node);
        assert_eq!(a.int("axis", 0).unwrap(), -2);
        assert_eq!(a.int("missing", 7).unwrap(), 7);
        assert_eq!(a.int("zero", 7).unwrap(), 0);
        assert_eq!(a.float("alpha", 0.0).unwrap(), 0.5);
        assert_eq!(a.string("mode", "nearest").unwrap(), "linear");
        assert_eq!(a.usizes("pads").unwrap(), vec![1, 2, 1, 2]);
        assert!(a.usizes("missing").unwrap().is_empty());
        let e = a.usizes("bad").unwrap_err().to_string();
        assert!(e.contains("negative"), "{e}");
        let e = a.int("alpha", 0).unwrap_err().to_string();
        assert_eq!(e, "attribute 'alpha' should be an int, got FLOAT");
        assert_eq!(a.auto_pad().unwrap(), AutoPad::NotSet);
    }
}
