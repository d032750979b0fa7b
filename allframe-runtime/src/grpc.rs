//! What generated gRPC services use from the runtime (feature `grpc`): [`ProtoCodec`], tonic's
//! prost codec except that a message that does not decode is `INVALID_ARGUMENT` (the caller
//! sent it) rather than `INTERNAL`.

use std::marker::PhantomData;

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// tonic's prost codec, except that a message that cannot be decoded is `INVALID_ARGUMENT`
/// (the caller sent bytes that are not the declared message) instead of `INTERNAL`.
///
/// Generated services use it through `tonic-prost-build`:
/// `tonic_prost_build::configure().codec_path("allframe::grpc::ProtoCodec")`.
#[derive(Debug)]
pub struct ProtoCodec<T, U> {
    types: PhantomData<fn(T) -> U>,
}

impl<T, U> Default for ProtoCodec<T, U> {
    fn default() -> Self {
        Self { types: PhantomData }
    }
}

impl<T, U> Codec for ProtoCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProtoEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> ProtoEncoder<T> {
        ProtoEncoder { types: PhantomData }
    }

    fn decoder(&mut self) -> ProtoDecoder<U> {
        ProtoDecoder { types: PhantomData }
    }
}

/// Encodes `T` with prost (see [`ProtoCodec`]).
#[derive(Debug)]
pub struct ProtoEncoder<T> {
    types: PhantomData<fn(T)>,
}

impl<T: prost::Message> Encoder for ProtoEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // The buffer grows as needed, so prost cannot run out of room.
        item.encode(buf)
            .map_err(|error| Status::internal(format!("cannot encode the message: {error}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Decodes `U` with prost; bytes that are not a `U` are `INVALID_ARGUMENT` (see [`ProtoCodec`]).
#[derive(Debug)]
pub struct ProtoDecoder<U> {
    types: PhantomData<fn() -> U>,
}

impl<U: prost::Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| {
            Status::invalid_argument(format!("the message does not decode: {error}"))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
