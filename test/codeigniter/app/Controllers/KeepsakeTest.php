<?php

namespace App\Controllers;

use CodeIgniter\Controller;

/**
 * JSON endpoints keepsake's tests call to drive a real CodeIgniter session. Every answer that
 * starts the session reports the session ID and all of $_SESSION after the operation (CodeIgniter
 * stores _ci_previous_url only after the controller returns, so it shows up on the next request).
 * Values travel as JSON in the `value` query parameter so tests can store any type.
 */
class KeepsakeTest extends Controller
{
    /** Answers without starting a session, so tests can wait for the server. */
    public function ping()
    {
        return $this->response->setJSON([
            'ok'          => true,
            'php'         => PHP_VERSION,
            'codeigniter' => \CodeIgniter\CodeIgniter::CI_VERSION,
            'sidLength'   => (int) ini_get('session.sid_length'),
            'sidBits'     => (int) ini_get('session.sid_bits_per_character'),
        ]);
    }

    public function login()
    {
        $session = session();
        $session->set('user', ['name' => $this->request->getGet('user') ?? 'alice', 'loggedIn' => true]);

        return $this->state();
    }

    public function read()
    {
        session();

        return $this->state();
    }

    public function set()
    {
        session()->set($this->key(), $this->value());

        return $this->state();
    }

    public function remove()
    {
        session()->remove($this->key());

        return $this->state();
    }

    public function flash()
    {
        session()->setFlashdata($this->key(), $this->value());

        return $this->state();
    }

    public function flashRead()
    {
        return $this->state(['flash' => session()->getFlashdata($this->key())]);
    }

    public function temp()
    {
        session()->setTempdata($this->key(), $this->value(), (int) ($this->request->getGet('ttl') ?? 300));

        return $this->state();
    }

    public function tempRead()
    {
        return $this->state(['temp' => session()->getTempdata($this->key())]);
    }

    /** Read-modify-write; `sleep` (ms) between the read and the write widens races. */
    public function increment()
    {
        $session = session();
        $key     = $this->request->getGet('key') ?? 'counter';
        $before  = (int) ($session->get($key) ?? 0);
        $sleep   = (int) ($this->request->getGet('sleep') ?? 0);
        if ($sleep > 0) {
            usleep($sleep * 1000);
        }
        $session->set($key, $before + 1);

        return $this->state(['before' => $before, 'after' => $before + 1]);
    }

    public function destroy()
    {
        $session = session();
        $id      = session_id();
        $session->destroy();

        return $this->response->setJSON(['destroyedId' => $id]);
    }

    public function regenerate()
    {
        $session = session();
        $oldId   = session_id();
        $session->regenerate($this->request->getGet('destroy') === '1');

        return $this->state(['oldId' => $oldId]);
    }

    private function key(): string
    {
        return $this->request->getGet('key') ?? 'key';
    }

    private function value()
    {
        $value = $this->request->getGet('value');

        return $value === null ? null : json_decode($value, true, 512, JSON_THROW_ON_ERROR);
    }

    private function state(array $extra = [])
    {
        return $this->response->setJSON(array_merge($extra, [
            'id'      => session_id(),
            'session' => (object) ($_SESSION ?? []),
        ]));
    }
}
