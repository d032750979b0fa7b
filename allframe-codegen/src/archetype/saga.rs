//! The `saga-orchestrator` archetype: the saga of `[services.saga]`, driven durably by the
//! runtime's `allframe::saga` (state in the service's database, compensation in reverse,
//! deadline, crash-resume under a lease and fencing epoch).
//!
//! Obligations:
//! - a trait named after the saga (`CreateOrderSaga`), declared beside the user's struct, with
//!   its input type (`type Input`, what `POST /sagas` takes) and one method per name in
//!   `steps` and `compensation` (`ValidateInventory` → `validate_inventory(&self, step)`). A
//!   missing method is the compiler's own E0046 naming it at the user's impl; no impl at all
//!   is the trait's `on_unimplemented` at the struct.
//! - `allframe::Service` and `allframe::RestApi` (the scaffold's routes are
//!   `allframe::saga::routes::<Self>()`).
//!
//! - with `[services.integrations]`, the participants its steps call over HTTP: `Integrations`
//!   and one accessor per provider, exactly as a `gateway`'s.
//!
//! Derived: `allframe::saga::Orchestrate`, dispatching each step and compensation by position
//! to the user's methods.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};

use crate::load::Loaded;
use crate::obligations::{Obligation, Required, Shape};
use crate::plan::{SagaPlan, ServicePlan};
use crate::{Env, ServiceArgs, emit};

pub(crate) fn expand(
    args: &ServiceArgs,
    item: &syn::ItemStruct,
    loaded: &Loaded,
    plan: &ServicePlan<'_>,
    env: &Env,
) -> Result<TokenStream, syn::Error> {
    emit::not_generic(item)?;
    let Some(saga) = &plan.saga else {
        return Err(syn::Error::new(
            args.name_span,
            "a saga orchestrator's plan has no `[services.saga]`",
        ));
    };
    let krate = &args.krate;
    let p = quote!(#krate::__private);
    let ident = &item.ident;
    let span: Span = ident.span();
    let name = plan.service.name();
    let trait_ident = format_ident!("{}", saga.name, span = span);

    let obligation = obligation(args, saga, name).declare(&item.vis, span);
    let unknown = format!("saga `{}` has no step at position {{}}", saga.name);
    let dispatch = |methods: Vec<&str>| {
        let arms = methods.into_iter().enumerate().map(|(index, method)| {
            let method = format_ident!("{}", method, span = span);
            quote_spanned! {span=>
                #index => <Self as #trait_ident>::#method(self, step).await,
            }
        });
        quote! {
            ::std::boxed::Box::pin(async move {
                match index {
                    #(#arms)*
                    other => ::core::result::Result::Err(::std::format!(#unknown, other).into()),
                }
            })
        }
    };
    let steps = dispatch(saga.steps.iter().map(|s| s.step_method.as_str()).collect());
    let compensations = dispatch(
        saga.steps
            .iter()
            .map(|s| s.compensation_method.as_str())
            .collect(),
    );
    // Spanned at the struct: without an impl of the saga's trait, the error points there.
    let input = quote_spanned!(span=> type Input = <Self as #trait_ident>::Input;);
    // Participants called over HTTP: their clients, as a gateway's providers.
    let integrations =
        (!plan.providers.is_empty()).then(|| super::gateway::integrations(args, item, plan));
    let items = quote! {
        #obligation
        #integrations

        impl #p::Orchestrate for #ident {
            #input

            fn step<'a>(
                &'a self,
                index: usize,
                step: &'a mut #p::SagaStep<Self::Input>,
            ) -> #p::BoxFuture<'a, ::core::result::Result<(), #krate::BoxError>> {
                #steps
            }

            fn compensate<'a>(
                &'a self,
                index: usize,
                step: &'a mut #p::SagaStep<Self::Input>,
            ) -> #p::BoxFuture<'a, ::core::result::Result<(), #krate::BoxError>> {
                #compensations
            }
        }
    };
    emit::service(args, item, loaded, plan, env, items)
}

/// The saga's trait: its input, then per step its method and its compensation's.
fn obligation(args: &ServiceArgs, saga: &SagaPlan<'_>, name: &str) -> Obligation {
    let krate = &args.krate;
    let signature = quote! {
        (
            &self,
            step: &mut #krate::saga::SagaStep<Self::Input>,
        ) -> impl ::core::future::Future<
            Output = ::core::result::Result<(), #krate::BoxError>,
        > + ::core::marker::Send
    };
    let mut items = vec![Required {
        name: "Input".to_owned(),
        shape: Shape::Type(quote!(#krate::saga::Input)),
        doc: format!(
            "The input of a `{}`: the JSON body of `POST /sagas`, stored with the saga and given to every step.",
            saga.name
        ),
    }];
    let count = saga.steps.len();
    for (index, step) in saga.steps.iter().enumerate() {
        items.push(Required {
            name: step.step_method.clone(),
            shape: Shape::Method(signature.clone()),
            doc: format!(
                "Step {} of {count}, `{}`. Called again after a failure (the service's retry policy) and after a crash, always with the same `step.key()`: send it to the participant as its idempotency key. Work done through `step.uow()` commits with the saga's progress, exactly once. An `Err` (or a panic) past the retries compensates the steps before it.",
                index + 1,
                step.step
            ),
        });
    }
    for step in &saga.steps {
        items.push(Required {
            name: step.compensation_method.clone(),
            shape: Shape::Method(signature.clone()),
            doc: format!(
                "Undoes `{}`, as `{}`. Runs in reverse order after a failure or the deadline, for each step that completed (or whose outcome is unknown); retried, then the saga is `stuck` until an operator retries it.",
                step.step, step.compensation
            ),
        });
    }
    Obligation {
        name: saga.name.to_owned().into(),
        doc: format!(
            "The saga `{}` of `{name}`, as `{}` declares it in `[services.saga]`: its input, and a method per step and compensation.",
            saga.name, args.config
        ),
        message: format!(
            "`{{Self}}` is the saga orchestrator `{name}`, so it must implement `{}`",
            saga.name
        ),
        label: "this orchestrator does not say how its saga's steps run",
        items,
    }
}
