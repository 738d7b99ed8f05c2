"""The losses of CycleGAN (arXiv:1703.10593v7): Eq. 1-3, in the least-squares form of Sec. 4.

Adversarial loss (Eq. 1, least squares as in Sec. 4), cycle-consistency loss (Eq. 2), the identity
loss of Sec. 5.2, and the generators' full objective (Eq. 3 plus identity) that train.py minimizes.
Every loss is a mean over all its values: the batch, and for D's outputs every patch score.
"""


def lsgan_d_loss(d_real, d_fake):
    """The discriminator's least-squares loss (Sec. 4): (D(y) - 1)^2 + D(G(x))^2, halved.

    Appendix 7.1: "we divide the objective by 2 while optimizing D, which slows down the rate at
    which D learns, relative to the rate of G". d_real = D_Y(y), d_fake = D_Y(G(x)): maps of
    patch scores.
    """
    real_term = ((d_real - 1) ** 2).mean()  # E_y[(D_Y(y) - 1)^2]: real patches should score 1
    fake_term = (d_fake ** 2).mean()  # E_x[D_Y(G(x))^2]: fake patches should score 0
    return 0.5 * (real_term + fake_term)  # the 0.5 of appendix 7.1


def lsgan_g_loss(d_fake):
    """The generator's least-squares loss (Sec. 4): E_x[(D_Y(G(x)) - 1)^2], fool D into saying 1."""
    return ((d_fake - 1) ** 2).mean()


def cycle_loss(real, rec):
    """One direction of the cycle-consistency loss (Eq. 2): E_x[|F(G(x)) - x|_1].

    Deviation: |.|_1 is averaged over pixels, not summed; lambda_cyc = 10 assumes the mean.
    """
    return (rec - real).abs().mean()


def identity_loss(real, idt):
    """One direction of the identity loss (Sec. 5.2): E_y[|G(y) - y|_1], averaged as cycle_loss."""
    return (idt - real).abs().mean()


def generator_objective(d_fake_y, d_fake_x, real_x, real_y, rec_x, rec_y, idt_x=None, idt_y=None,
                        lambda_cyc=10.0, lambda_idt=0.5, lambda_gan=1.0, cycle="both"):
    """What G and F minimize together: Eq. 3 plus the identity loss of Sec. 5.2.

    d_fake_y = D_Y(G(x)), d_fake_x = D_X(F(y)); rec_x = F(G(x)), rec_y = G(F(y)); idt_y = G(y),
    idt_x = F(x) (None when lambda_idt is 0, and only then). The identity term is weighted
    lambda_idt * lambda_cyc, 0.5 * 10 = 5 by default (appendix 7.1). For the ablation of
    Table 4: lambda_gan = 0 is "cycle alone", lambda_cyc = 0 is "GAN alone", cycle = "forward"
    or "backward" keeps one cycle term.
    Returns the total and a dict of its parts, unweighted, for logging.
    """
    parts = {
        "GAN(G)": lsgan_g_loss(d_fake_y),  # L_GAN(G, D_Y, X, Y), Eq. 1
        "GAN(F)": lsgan_g_loss(d_fake_x),  # L_GAN(F, D_X, Y, X)
        "cyc_x": cycle_loss(real_x, rec_x),  # forward cycle x -> G(x) -> F(G(x)) ~ x, Eq. 2
        "cyc_y": cycle_loss(real_y, rec_y),  # backward cycle y -> F(y) -> G(F(y)) ~ y, Eq. 2
    }
    cycles = {"both": ("cyc_x", "cyc_y"), "forward": ("cyc_x",), "backward": ("cyc_y",)}[cycle]
    total = (lambda_gan * (parts["GAN(G)"] + parts["GAN(F)"])
             + lambda_cyc * sum(parts[c] for c in cycles))  # Eq. 3
    if idt_x is not None and idt_y is not None:
        parts["idt"] = identity_loss(real_y, idt_y) + identity_loss(real_x, idt_x)  # Sec. 5.2
        total = total + lambda_idt * lambda_cyc * parts["idt"]
    return total, parts
