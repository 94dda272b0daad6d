// C ABI over the verilated espo_cosim_top, for the Rust crate espo-rtl (src/ffi.rs).
// Every step function applies inputs, settles the logic with the clock low, samples the
// outputs (the registered results of earlier cycles) and then clocks one rising edge.
#include <cstdint>
#include <cstring>
#include <deque>
#include <vector>
#include "Vespo_cosim_top.h"
#include "verilated.h"

namespace {

struct InPacket {
    std::vector<uint8_t> data;
    uint8_t outbound;
    uint8_t bypass;
    uint32_t sa_index;
};

struct OutPacket {
    std::vector<uint8_t> data;
    uint8_t status, flags, aux, dropped;
    uint64_t seq;
    uint32_t sa_index, spi;
    uint64_t in_first, in_last, out_first, out_last;
};

struct Sim {
    VerilatedContext* ctx;
    Vespo_cosim_top* top;
    uint64_t cycle;
    std::deque<InPacket> in_queue;
    std::deque<std::pair<uint64_t, uint64_t>> accepted;  // input first/last beat cycles
    std::deque<OutPacket> out_queue;
    size_t in_beat;
    uint64_t in_first;
    OutPacket cur;
    bool cur_open;
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

template <std::size_t W>
void set_le(VlWide<W>& w, const uint8_t* b, std::size_t n) {
    for (std::size_t i = 0; i < W; i++) w[i] = 0;
    for (std::size_t i = 0; i < n && i < W * 4; i++) w[i / 4] |= static_cast<uint32_t>(b[i]) << (8 * (i % 4));
}

template <std::size_t W>
void get_le(const VlWide<W>& w, uint8_t* b, std::size_t n) {
    for (std::size_t i = 0; i < n && i < W * 4; i++) b[i] = static_cast<uint8_t>(w[i / 4] >> (8 * (i % 4)));
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
    s->in_beat = 0;
    s->in_first = 0;
    s->cur_open = false;
    s->top->natt_port = 4500;
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

void espo_rtl_set_natt_port(Sim* s, uint16_t port) { s->top->natt_port = port; }

void espo_rtl_reg_write(Sim* s, uint32_t addr, uint32_t data) {
    Vespo_cosim_top* t = s->top;
    t->reg_we = 1;
    t->reg_addr = addr;
    t->reg_wdata = data;
    settle(s);
    rise(s);
    t->reg_we = 0;
    settle(s);
}

uint32_t espo_rtl_reg_read(Sim* s, uint32_t addr) {
    s->top->reg_addr = addr;
    settle(s);
    return s->top->reg_rdata;
}

// Clocks until the register port's admin completion shows PHASE at `phase_word` bit 31.
int espo_rtl_reg_wait(Sim* s, uint32_t phase_addr, uint64_t max_cycles) {
    for (uint64_t i = 0; i < max_cycles; i++) {
        if (espo_rtl_reg_read(s, phase_addr) >> 31) return 0;
        rise(s);
    }
    return -1;
}

void espo_rtl_push(Sim* s, const uint8_t* data, size_t len, uint8_t outbound, uint8_t bypass,
                   uint32_t sa_index) {
    InPacket p;
    p.data.assign(data, data + len);
    p.outbound = outbound;
    p.bypass = bypass;
    p.sa_index = sa_index;
    s->in_queue.push_back(std::move(p));
}

// Streams every pushed packet back to back and collects the outputs; returns 0 when every
// input has its output (or was dropped), -1 after max_cycles.
int espo_rtl_run(Sim* s, uint64_t max_cycles) {
    Vespo_cosim_top* t = s->top;
    size_t expected = s->in_queue.size() + s->accepted.size() + (s->in_beat ? 1 : 0);
    size_t done = 0;
    t->m_tready = 1;
    for (uint64_t i = 0; i < max_cycles; i++) {
        if (done == expected && s->in_queue.empty()) return 0;
        // Drive the current input beat.
        bool have = !s->in_queue.empty();
        size_t len = have ? s->in_queue.front().data.size() : 0;
        size_t beats = have ? (len + 63) / 64 : 0;
        if (have && beats == 0) beats = 1;
        if (have) {
            const InPacket& p = s->in_queue.front();
            size_t off = s->in_beat * 64;
            size_t n = off < len ? len - off : 0;
            if (n > 64) n = 64;
            set_le(t->s_tdata, p.data.data() + off, n);
            t->s_tkeep = n >= 64 ? ~0ULL : ((1ULL << n) - 1);
            t->s_tlast = (s->in_beat + 1 == beats);
            t->s_outbound = p.outbound;
            t->s_bypass = p.bypass;
            t->s_sa_index = p.sa_index;
        }
        t->s_tvalid = have;
        settle(s);
        bool in_fire = have && t->s_tready;
        bool out_fire = t->m_tvalid && t->m_tready;
        if (out_fire) {
            if (!s->cur_open) {
                s->cur = OutPacket{};
                s->cur.out_first = s->cycle;
                s->cur_open = true;
            }
            uint8_t buf[64];
            get_le(t->m_tdata, buf, 64);
            uint64_t keep = t->m_tkeep;
            for (int b = 0; b < 64; b++)
                if ((keep >> b) & 1) s->cur.data.push_back(buf[b]);
            if (t->m_tlast) {
                s->cur.status = t->m_status;
                s->cur.flags = t->m_flags;
                s->cur.aux = t->m_aux;
                s->cur.seq = t->m_seq;
                s->cur.sa_index = t->m_sa_index;
                s->cur.spi = t->m_spi;
                s->cur.dropped = 0;
                s->cur.out_last = s->cycle;
                if (!s->accepted.empty()) {
                    s->cur.in_first = s->accepted.front().first;
                    s->cur.in_last = s->accepted.front().second;
                    s->accepted.pop_front();
                }
                s->out_queue.push_back(std::move(s->cur));
                s->cur_open = false;
                done++;
            }
        }
        if (t->dropped) {
            OutPacket d{};
            d.dropped = 1;
            if (!s->accepted.empty()) {
                d.in_first = s->accepted.front().first;
                d.in_last = s->accepted.front().second;
                s->accepted.pop_front();
            }
            d.out_first = d.out_last = s->cycle;
            s->out_queue.push_back(std::move(d));
            done++;
        }
        if (in_fire) {
            if (s->in_beat == 0) s->in_first = s->cycle;
            s->in_beat++;
            if (s->in_beat == beats) {
                s->accepted.emplace_back(s->in_first, s->cycle);
                s->in_queue.pop_front();
                s->in_beat = 0;
            }
        }
        rise(s);
        t->s_tvalid = 0;
    }
    return -1;
}

struct EspoOut {
    uint8_t status, flags, aux, dropped;
    uint64_t seq;
    uint32_t sa_index, spi;
    uint64_t in_first, in_last, out_first, out_last;
    uint64_t len;
};

// Moves the oldest output into buf (up to cap bytes) and out; 0 when there was one.
int espo_rtl_pop(Sim* s, uint8_t* buf, size_t cap, EspoOut* out) {
    if (s->out_queue.empty()) return -1;
    OutPacket& p = s->out_queue.front();
    out->status = p.status;
    out->flags = p.flags;
    out->aux = p.aux;
    out->dropped = p.dropped;
    out->seq = p.seq;
    out->sa_index = p.sa_index;
    out->spi = p.spi;
    out->in_first = p.in_first;
    out->in_last = p.in_last;
    out->out_first = p.out_first;
    out->out_last = p.out_last;
    out->len = p.data.size();
    std::memcpy(buf, p.data.data(), p.data.size() < cap ? p.data.size() : cap);
    s->out_queue.pop_front();
    return 0;
}

}  // extern "C"
