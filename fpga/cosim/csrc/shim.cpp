// C ABI over the verilated espo_cosim_top, for the Rust crate espo-rtl (src/ffi.rs).
// Every step function applies inputs, settles the logic with the clock low, samples the
// outputs (the registered results of earlier cycles) and then clocks one rising edge.
#include <cstdint>
#include <cstring>
#include "Vespo_cosim_top.h"
#include "verilated.h"

namespace {

struct Sim {
    VerilatedContext* ctx;
    Vespo_cosim_top* top;
    uint64_t cycle;
};

void settle(Sim* s) {
    s->top->clk = 0;
    s->top->eval();
}

void rise(Sim* s) {
    s->top->clk = 1;
    s->top->eval();
    s->cycle++;
}

// Big-endian block of n bytes: byte 0 in the most significant bits.
template <std::size_t W>
void set_be(VlWide<W>& w, const uint8_t* b, std::size_t n) {
    for (std::size_t i = 0; i < W; i++) w[i] = 0;
    for (std::size_t i = 0; i < n; i++) {
        std::size_t bit = (n - 1 - i) * 8;
        w[bit / 32] |= static_cast<uint32_t>(b[i]) << (bit % 32);
    }
}

template <std::size_t W>
void get_be(const VlWide<W>& w, uint8_t* b, std::size_t n) {
    for (std::size_t i = 0; i < n; i++) {
        std::size_t bit = (n - 1 - i) * 8;
        b[i] = static_cast<uint8_t>(w[bit / 32] >> (bit % 32));
    }
}

}  // namespace

extern "C" {

struct EspoAesIn {
    uint8_t valid;
    uint8_t is256;
    uint8_t block[16];
    uint8_t key[32];
};

struct EspoAesOut {
    uint8_t valid;
    uint8_t block[16];
};

struct EspoGcmIn {
    uint8_t valid;
    uint8_t kind;
    uint8_t is256;
    uint8_t has_aad;
    uint8_t vbytes;
    uint8_t decrypt;
    uint8_t last;
    uint8_t ctr[16];
    uint8_t key[32];
    uint8_t data[16];
    uint8_t lenblk[16];
    uint32_t user;
};

struct EspoGcmOut {
    uint8_t text_valid;
    uint8_t text_vbytes;
    uint8_t tag_valid;
    uint8_t text[16];
    uint8_t tag[16];
    uint32_t text_user;
    uint32_t tag_user;
};

Sim* espo_rtl_new() {
    Sim* s = new Sim;
    s->ctx = new VerilatedContext;
    s->top = new Vespo_cosim_top{s->ctx};
    s->cycle = 0;
    return s;
}

void espo_rtl_free(Sim* s) {
    if (!s) return;
    s->top->final();
    delete s->top;
    delete s->ctx;
    delete s;
}

void espo_rtl_reset(Sim* s) {
    s->top->rst_n = 0;
    for (int i = 0; i < 4; i++) {
        settle(s);
        rise(s);
    }
    s->top->rst_n = 1;
    settle(s);
}

uint64_t espo_rtl_cycle(const Sim* s) { return s->cycle; }

void espo_rtl_aes_step(Sim* s, const EspoAesIn* in, EspoAesOut* out) {
    Vespo_cosim_top* t = s->top;
    t->aes_in_valid = in->valid;
    t->aes_in_is256 = in->is256;
    set_be(t->aes_in_block, in->block, 16);
    set_be(t->aes_in_key, in->key, 32);
    settle(s);
    out->valid = t->aes_out_valid;
    get_be(t->aes_out_block, out->block, 16);
    rise(s);
    t->aes_in_valid = 0;
}

void espo_rtl_gcm_step(Sim* s, const EspoGcmIn* in, EspoGcmOut* out) {
    Vespo_cosim_top* t = s->top;
    t->gcm_in_valid = in->valid;
    t->gcm_in_kind = in->kind;
    t->gcm_in_is256 = in->is256;
    t->gcm_in_has_aad = in->has_aad;
    t->gcm_in_vbytes = in->vbytes;
    t->gcm_in_decrypt = in->decrypt;
    t->gcm_in_last = in->last;
    t->gcm_in_user = in->user;
    set_be(t->gcm_in_ctr, in->ctr, 16);
    set_be(t->gcm_in_key, in->key, 32);
    set_be(t->gcm_in_data, in->data, 16);
    set_be(t->gcm_in_lenblk, in->lenblk, 16);
    settle(s);
    out->text_valid = t->gcm_out_text_valid;
    out->text_vbytes = t->gcm_out_text_vbytes;
    out->tag_valid = t->gcm_out_tag_valid;
    get_be(t->gcm_out_text, out->text, 16);
    get_be(t->gcm_out_tag, out->tag, 16);
    out->text_user = t->gcm_out_text_user;
    out->tag_user = t->gcm_out_tag_user;
    rise(s);
    t->gcm_in_valid = 0;
}

}  // extern "C"
